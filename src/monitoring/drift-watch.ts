// The periodic drift check behind the `driftAlerts` subscription: every interval, the drift
// of each served version with a training reference; an alert when a feature's PSI crosses
// the threshold upward. Its clock and what it reads and publishes are passed in, so tests
// drive it without waiting.
import type { VersionDescriptor } from '../inference/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { ModelDrift } from './drift.ts';

/** One feature of one model version whose PSI rose to the threshold or above. */
export interface DriftAlert {
  model: string;
  version: number;
  feature: string;
  psi: number;
  threshold: number;
  /** Feature rows the check binned. */
  sampled: number;
  /** When the check found it; named like the records' timestamps so it travels through Redis as a Date. */
  createdAt: Date;
}

export type WatchedVersion = Pick<VersionDescriptor, 'name' | 'version' | 'manifest' | 'inputs'>;

/** setTimeout and clearTimeout, or a test's own. */
export interface Timer {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMER: Timer = {
  set: (run, ms) => setTimeout(run, ms).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface DriftWatchDeps {
  /** The versions to check now (the app: READY versions whose model.json has a reference). */
  versions: () => readonly WatchedVersion[];
  /** A version's drift (null: no reference). */
  measure: (version: WatchedVersion) => Promise<ModelDrift | null>;
  publish: (alert: DriftAlert) => void;
  log: Logger;
  timer?: Timer;
}

export interface DriftWatchOptions {
  /** Between the end of one check and the start of the next, in ms. */
  intervalMs: number;
  /** PSI at or above which a feature is drifting. */
  threshold: number;
  /** Feature rows a version needs before it is judged; with fewer, its state stays as it was. */
  minSamples: number;
}

export interface DriftWatch {
  /** Schedules the first check one interval from now (nothing after `stop`). */
  start(): void;
  /** No further check, for good; resolves once a check in flight has finished. */
  stop(): Promise<void>;
  /** Runs one check now (not while another runs: then it waits for that one). */
  check(): Promise<void>;
  /** Resolves once `count` more checks have finished (tests observe checks with it). */
  afterChecks(count: number): Promise<void>;
}

/**
 * Alerts fire on the upward crossing only: a feature that stays at or above the threshold
 * is announced once, and again only after a check has seen it back below. No event marks
 * the recovery. State is per process and per (model, version, feature); a version that
 * leaves the served set (unloaded, failed) forgets its state.
 */
export function createDriftWatch(deps: DriftWatchDeps, options: DriftWatchOptions): DriftWatch {
  const timer = deps.timer ?? REAL_TIMER;
  const drifting = new Set<string>();
  let handle: unknown;
  let running: Promise<void> | undefined;
  let stopped = true;
  let ended = false;
  let finished = 0;
  const waiters: Array<{ at: number; resolve: () => void }> = [];

  const judge = (drift: ModelDrift) => {
    if (drift.sampled < options.minSamples) return;
    for (const feature of drift.features) {
      if (feature.psi === null) continue;
      const key = `${drift.model}\0${drift.version}\0${feature.name}`;
      const above = feature.psi >= options.threshold;
      if (above && !drifting.has(key)) {
        deps.publish({ model: drift.model, version: drift.version, feature: feature.name, psi: feature.psi, threshold: options.threshold, sampled: drift.sampled, createdAt: new Date() });
      }
      if (above) drifting.add(key);
      else drifting.delete(key);
    }
  };

  const runCheck = async () => {
    const versions = deps.versions();
    const live = new Set(versions.map((v) => `${v.name}\0${v.version}\0`));
    for (const key of drifting) if (![...live].some((prefix) => key.startsWith(prefix))) drifting.delete(key);
    for (const version of versions) {
      try {
        const drift = await deps.measure(version);
        if (drift) judge(drift);
      } catch (error) {
        deps.log.warn({ err: error, model: version.name, version: version.version }, 'drift check failed');
      }
    }
  };

  const check = (): Promise<void> => {
    running ??= runCheck().finally(() => {
      running = undefined;
      // One pending timer at most, also after a check run by hand.
      timer.clear(handle);
      if (!stopped) schedule();
      finished++;
      for (const w of waiters.filter((w) => finished >= w.at)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    });
    return running;
  };

  const schedule = () => {
    handle = timer.set(() => void check(), options.intervalMs);
  };

  return {
    start() {
      if (!stopped || ended) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      ended = true;
      timer.clear(handle);
      await running;
    },
    check,
    afterChecks(count) {
      const at = finished + count;
      return new Promise((resolve) => waiters.push({ at, resolve }));
    },
  };
}
