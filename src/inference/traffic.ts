// Traffic between the versions of a model: weighted splits, routed deterministically by
// request id, and the guard that returns traffic to the stable version by itself when a
// candidate does worse. In-process state: each replica keeps its own splits and counts.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { modelEvent, type ModelEventSink, type TrafficWeight } from './model-events.ts';
import { guardVerdict, OutcomeWindow, type GuardSignal, type RolloutGuard } from './rollout-guard.ts';

export interface TrafficSplit {
  /** Weights in version order; they need not add up to 1 (each version gets weight / total). */
  weights: TrafficWeight[];
  /** Where it came from: model.json `traffic`, or `setTrafficSplit`. */
  source: 'MANIFEST' | 'MUTATION';
  guard: RolloutGuard | null;
  /** When this split took effect: the guard compares outcomes from then on. */
  since: Date;
}

export interface TrafficRouterOptions {
  log: Logger;
  /** TRAFFIC and ROLLED_BACK events (the `modelEvents` subscription). */
  onEvent?: ModelEventSink;
  /** Figures the guard cannot count itself (ACCURACY: from feedback in the database). */
  signals?: Partial<Record<RolloutGuard['metric'], GuardSignal>>;
  /** The guard is checked once every this many outcomes of a guarded model. @default 5 */
  checkEvery?: number;
}

/** A number in [0, 1) from a request id: the same id always lands on the same version. */
export function routePoint(model: string, routeKey: string): number {
  return createHash('sha256').update(model).update('\0').update(routeKey).digest().readUInt32BE(0) / 2 ** 32;
}

/** Picks the version whose share of [0, 1) holds `point`, among `weights` (zero weights never). */
export function pickByWeight(weights: readonly TrafficWeight[], point: number): number | undefined {
  const total = weights.reduce((sum, w) => sum + w.weight, 0);
  if (total <= 0) return undefined;
  let edge = 0;
  for (const w of weights) {
    edge += w.weight / total;
    if (w.weight > 0 && point < edge) return w.version;
  }
  return weights.findLast((w) => w.weight > 0)?.version;
}

export type TrafficRouter = ReturnType<typeof createTrafficRouter>;

/**
 * The splits in force, by model. A split set by mutation wins over the manifest's until it is
 * cleared. Outcomes of guarded models are counted per version from the moment the split took
 * effect; every `checkEvery` outcomes the guard compares each candidate with the stable version
 * and, when one is worse beyond its threshold, the split becomes 100% stable (source MUTATION,
 * so a manifest reread does not undo it) with a ROLLED_BACK event.
 */
export function createTrafficRouter(options: TrafficRouterOptions) {
  const { log } = options;
  const emit = options.onEvent ?? (() => {});
  const checkEvery = options.checkEvery ?? 5;
  const fromManifest = new Map<string, TrafficSplit>();
  const fromMutation = new Map<string, TrafficSplit>();
  const windows = new Map<string, OutcomeWindow>();
  const checking = new Set<string>();
  let sinceCheck = new Map<string, number>();

  const current = (model: string) => fromMutation.get(model) ?? fromManifest.get(model);

  const changed = (model: string, reason: string) => {
    const split = current(model);
    windows.delete(model);
    if (split?.guard) windows.set(model, new OutcomeWindow());
    emit(modelEvent('TRAFFIC', model, null, reason, { split: split?.weights ?? null }));
  };

  async function check(model: string, split: TrafficSplit, window: OutcomeWindow): Promise<void> {
    const guard = split.guard!;
    const signal = options.signals?.[guard.metric];
    for (const { version } of split.weights.filter((w) => w.version !== guard.stableVersion && w.weight > 0)) {
      const verdict = await guardVerdict(guard, { model, candidate: version, since: split.since, window, signal });
      if (current(model) !== split) return; // the split changed while the figures were read
      if (!verdict.worse) continue;
      const reason = `${verdict.reason}; all traffic returns to version ${guard.stableVersion}`;
      log.warn({ model, version, reason }, 'rollout guard tripped');
      fromMutation.set(model, { weights: [{ version: guard.stableVersion, weight: 1 }], source: 'MUTATION', guard: null, since: new Date() });
      windows.delete(model);
      emit(modelEvent('ROLLED_BACK', model, version, reason, { split: [{ version: guard.stableVersion, weight: 1 }] }));
      return;
    }
  }

  return {
    /** The split in force for `model`, if any. */
    split(model: string): TrafficSplit | undefined {
      return current(model);
    },

    /** The version a request without an explicit version goes to, or undefined (no split: the default version). */
    pick(model: string, routeKey: string, ready: (version: number) => boolean): number | undefined {
      const split = current(model);
      if (!split) return undefined;
      // A version of the split that is not READY (loading, failed, unloaded) takes no traffic: its share goes to the others.
      return pickByWeight(split.weights.filter((w) => ready(w.version)), routePoint(model, routeKey));
    },

    /** `setTrafficSplit`: weights checked by the caller (versions exist). */
    set(model: string, weights: TrafficWeight[], guard: RolloutGuard | null): TrafficSplit {
      const split: TrafficSplit = { weights: [...weights].sort((a, b) => a.version - b.version), source: 'MUTATION', guard, since: new Date() };
      fromMutation.set(model, split);
      changed(model, guard ? `setTrafficSplit, guarded by ${guard.metric} against version ${guard.stableVersion}` : 'setTrafficSplit');
      return split;
    },

    /** `clearTrafficSplit`: back to model.json's split, or to the default version. */
    clear(model: string): void {
      if (!fromMutation.delete(model)) return;
      changed(model, fromManifest.has(model) ? "clearTrafficSplit: model.json's split is in force" : 'clearTrafficSplit: the default version takes all traffic');
    },

    /** The split model.json asks for (undefined: none); the registry calls it whenever it takes a manifest. */
    fromManifest(model: string, traffic: { split: TrafficWeight[]; guard?: RolloutGuard } | undefined): void {
      const before = fromManifest.get(model);
      const same = JSON.stringify(before && { w: before.weights, g: before.guard }) === JSON.stringify(traffic && { w: [...traffic.split].sort((a, b) => a.version - b.version), g: traffic.guard ?? null });
      if (same) return;
      if (traffic) fromManifest.set(model, { weights: [...traffic.split].sort((a, b) => a.version - b.version), source: 'MANIFEST', guard: traffic.guard ?? null, since: new Date() });
      else fromManifest.delete(model);
      if (!fromMutation.has(model)) changed(model, traffic ? 'model.json traffic split' : 'model.json no longer splits traffic');
    },

    /** One answered (or failed) inference of a guarded model, by version. Cheap for unguarded models. */
    record(model: string, version: number, ok: boolean, latencyMs: number): void {
      const window = windows.get(model);
      if (!window) return;
      window.add(version, ok, latencyMs);
      const n = (sinceCheck.get(model) ?? 0) + 1;
      sinceCheck.set(model, n);
      if (n < checkEvery || checking.has(model)) return;
      sinceCheck.set(model, 0);
      const split = current(model);
      if (!split?.guard) return;
      checking.add(model);
      check(model, split, window)
        .catch((error: unknown) => log.warn({ err: error, model }, 'rollout guard check failed'))
        .finally(() => checking.delete(model));
    },

    /** Forgets every split and count (tests). */
    reset(): void {
      fromManifest.clear();
      fromMutation.clear();
      windows.clear();
      sinceCheck = new Map();
    },
  };
}
