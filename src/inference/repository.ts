import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ModelNotFoundError, ModelNotReadyError, ServiceUnavailableError } from '../errors.ts';
import type { Manifest } from './manifest.ts';
import { modelEvent, type ModelEvent, type ModelEventSink } from './model-events.ts';
import { replayAgreement, verificationFailure, type ServedExample } from './replay.ts';
import { scanModel, scanRepository, type ScannedModel, type ScannedVersion } from './repository-scan.ts';
import { loadServedVersion, VersionLoadError, type LoadOptions } from './served-version.ts';
import type { Model, ServedVersion, VersionState } from './types.ts';
import type { TrafficRouter } from './traffic.ts';
import { policyReason, versionsToLoad } from './version-policy.ts';

/** The version served when a request names none: the manifest's, else the newest READY one, else the newest. */
export function defaultVersionOf(model: Model): VersionState | undefined {
  const { versions, manifest } = model;
  if (manifest.defaultVersion !== undefined) return versions.find((v) => v.version === manifest.defaultVersion);
  return versions.findLast((v) => v.status === 'READY') ?? versions.at(-1);
}

export type ModelRepositoryOptions = Omit<LoadOptions, 'log'> & {
  /**
   * Register only the models with these names; the others are neither read nor loaded
   * (`get` and `resolve` treat them as absent). For a process that needs one model, such
   * as the batch CLI, loading the whole repository is slow. @default every model
   */
  only?: readonly string[];
  /** Told of every version state change (LOADING, READY, FAILED, …): the `modelEvents` subscription. */
  onEvent?: ModelEventSink;
  /**
   * Verified swap: the newest `limit` stored requests of a model and the answers served for
   * them (the history). Unset, or `replayRequests` 0: versions take traffic without a replay.
   */
  servedExamples?: (model: string, limit: number) => Promise<ServedExample[]>;
  /** How many stored requests a version loaded while another serves is replayed on. @default 100 */
  replayRequests?: number;
  /** Traffic splits between versions (model.json `traffic` and `setTrafficSplit`): consulted by `resolve` when a request names no version. */
  traffic?: TrafficRouter;
};

interface Entry extends Model {
  manifest: Manifest;
  /** Why model.json is refused now (the last good manifest stays in force for versions serving). */
  manifestError: string | undefined;
  manifestStamp: string;
  /** Frozen states, replaced by `set` only. */
  versions: VersionState[];
}

/** `loadModel`/`unloadModel` decisions, which win over the version policy until the other is called. */
type Explicit = 'load' | 'unload';

/**
 * The Triton-style model repository and the registry of served versions:
 * `<root>/<name>/<version>/model.onnx` with an optional `<root>/<name>/model.json`.
 *
 * Lifecycle: the folder is scanned at construction; `load()` loads every version the version
 * policy selects. `poll()` (every MODEL_POLL_INTERVAL_MS when `startPolling` runs it) scans
 * again and reconciles: new version folders are loaded, warmed up and, when another version of
 * the model serves, verified by a replay of stored requests before they take traffic; removed
 * ones (and those the policy drops) are drained — removed from routing, their runs in flight
 * finished — then released; a changed model.onnx or model.json reloads the versions concerned.
 * A version that fails never replaces one that works (a failed reload leaves the previous file
 * serving), and each poll starts afresh, so one failure never hides later changes.
 *
 * Changes to one model are serialized (a poll and a `loadModel` never interleave on it); a
 * version's status changes here only.
 */
export class ModelRepository {
  readonly root: string;
  private readonly models = new Map<string, Entry>();
  private loading: Promise<void> | undefined;
  private closed = false;
  private readonly log: Logger;
  private readonly options: Omit<LoadOptions, 'log'>;
  private readonly only: readonly string[] | undefined;
  private readonly emitEvent: ModelEventSink;
  private readonly servedExamples: ModelRepositoryOptions['servedExamples'];
  private readonly replayRequests: number;
  private readonly traffic: TrafficRouter | undefined;
  /** model.onnx stamp each version was last loaded (or failed) from, by `name/version`. */
  private readonly stamps = new Map<string, string | null>();
  private readonly explicit = new Map<string, Explicit>();
  /** The tail of each model's chain of changes. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(root: string, log: Logger, options: ModelRepositoryOptions = {}) {
    this.root = resolve(root);
    this.log = log;
    const { only, onEvent, servedExamples, replayRequests, traffic, ...loadOptions } = options;
    this.options = loadOptions;
    this.only = only;
    this.emitEvent = onEvent ?? (() => {});
    this.servedExamples = servedExamples;
    this.replayRequests = replayRequests ?? 100;
    this.traffic = traffic;
    for (const scanned of scanRepository(this.root, only).values()) this.models.set(scanned.name, this.entryOf(scanned));
  }

  list(): Model[] {
    return [...this.models.values()];
  }

  get(name: string): Model | undefined {
    return this.models.get(name);
  }

  /** True once no version is LOADING. */
  get loaded(): boolean {
    return this.list().every((m) => m.versions.every((v) => v.status !== 'LOADING'));
  }

  /**
   * The served version a request should run on, or the error the client should see. A request
   * that names no version goes by the model's traffic split when it has one (`routeKey`, the
   * request id, decides: the same id always gets the same version), else to the default version.
   */
  resolve(name: string, version?: number | null, routeKey?: string): ServedVersion {
    const model = this.models.get(name);
    if (!model) throw new ModelNotFoundError(name);
    const explicit = version !== undefined && version !== null;
    const routed = !explicit && routeKey !== undefined ? this.traffic?.pick(name, routeKey, (v) => model.versions.some((s) => s.version === v && s.status === 'READY')) : undefined;
    const chosen = explicit ? model.versions.find((v) => v.version === version) : routed !== undefined ? model.versions.find((v) => v.version === routed) : defaultVersionOf(model);
    if (!chosen) throw new ModelNotFoundError(name, version ?? undefined);
    if (this.closed) throw new ServiceUnavailableError();
    if (chosen.status !== 'READY' || !chosen.served) {
      throw new ModelNotReadyError(name, chosen.version, chosen.status, chosen.error);
    }
    return chosen.served;
  }

  /** Loads every version the policies select (once); resolves when none is LOADING. No replay: nothing served before. */
  load(): Promise<void> {
    if (this.loading) return this.loading;
    for (const model of this.models.values()) for (const v of model.versions) if (v.status === 'FAILED') this.emit(modelEvent('FAILED', model.name, v.version, v.error ?? null));
    this.loading = Promise.all(
      [...this.models.values()].map((model) =>
        this.serialized(model.name, () => Promise.all(model.versions.filter((v) => v.status === 'LOADING').map((v) => this.bringUp(model, v.version, { verify: false })))),
      ),
    ).then(() => undefined);
    return this.loading;
  }

  /**
   * Scans the repository every `intervalMs` (the next scan is timed from the end of the
   * previous one, so scans never overlap); a scan that throws is logged and the next one runs.
   */
  startPolling(intervalMs: number): void {
    if (intervalMs <= 0 || this.pollTimer || this.closed) return;
    const next = () => {
      this.pollTimer = setTimeout(() => {
        this.polling = this.poll()
          .catch((error: unknown) => this.log.error({ err: error }, 'model repository poll failed'))
          .finally(() => {
            if (!this.closed) next();
          });
      }, intervalMs);
      this.pollTimer.unref();
    };
    next();
  }

  /** Scans the repository once and reconciles every model with what is on disk (see the class comment). */
  async poll(): Promise<void> {
    if (this.closed) return;
    await this.loading;
    const scanned = scanRepository(this.root, this.only);
    const gone = [...this.models.values()].filter((m) => !scanned.has(m.name));
    await Promise.all([
      ...gone.map((m) => this.serialized(m.name, () => this.removeModel(m))),
      ...[...scanned.values()].map((s) => this.serialized(s.name, () => this.reconcile(s))),
    ]);
  }

  /**
   * `loadModel`: loads (or reloads from disk) one version folder, whatever the version policy
   * says, and keeps it loaded until `unloadVersion`. Resolves with its state once it is READY
   * or FAILED. MODEL_NOT_FOUND when the folder does not exist.
   */
  async loadVersion(name: string, version: number): Promise<VersionState> {
    if (this.closed) throw new ServiceUnavailableError();
    return this.serialized(name, async () => {
      const scanned = this.only && !this.only.includes(name) ? undefined : scanModel(this.root, name);
      if (!scanned?.versions.has(version)) throw new ModelNotFoundError(name, version);
      this.explicit.set(`${name}/${version}`, 'load');
      let entry = this.models.get(name);
      if (!entry) {
        entry = this.entryOf({ ...scanned, versions: new Map() });
        this.models.set(name, entry);
      }
      this.refreshManifest(entry, scanned);
      if (!entry.versions.some((v) => v.version === version)) this.insert(entry, version, scanned.versions.get(version)!.path);
      await this.bringUp(entry, version, { verify: true, file: scanned.versions.get(version)! });
      return this.stateOf(name, version);
    });
  }

  /**
   * `unloadModel`: takes one version out of traffic, lets its runs in flight finish, releases
   * its session and lists it UNLOADED; polls leave it unloaded until `loadVersion`.
   */
  async unloadVersion(name: string, version: number): Promise<VersionState> {
    return this.serialized(name, async () => {
      const entry = this.models.get(name);
      if (!entry?.versions.some((v) => v.version === version)) throw new ModelNotFoundError(name, version);
      this.explicit.set(`${name}/${version}`, 'unload');
      await this.retire(entry, version, 'unloadModel');
      return this.stateOf(name, version);
    });
  }

  /**
   * Makes `next` serve `name` version `version` at once (READY, any error cleared): requests
   * resolved from now on run on it. Then waits for the previous served version to finish
   * its runs in flight and release its session.
   */
  async swap(name: string, version: number, next: ServedVersion): Promise<void> {
    if (next.name !== name || next.version !== version) {
      throw new Error(`swap: the served version is \`${next.name}\` version ${next.version}, not \`${name}\` version ${version}`);
    }
    const previous = this.stateOf(name, version).served;
    this.set(name, version, { status: 'READY', served: next });
    if (previous !== next) await previous?.close();
  }

  /**
   * Marks a READY version FAILED with the reason, as a load-time check would have (e.g. a
   * generator whose logits do not fit its vocabulary). Its counters stay listed; its session
   * is released once its runs in flight finish (the returned promise).
   */
  fail(name: string, version: number, reason: string): Promise<void> {
    const { served } = this.stateOf(name, version);
    this.set(name, version, { status: 'FAILED', error: reason, ...(served ? { served } : {}) });
    this.log.warn({ model: name, version, reason }, 'model version failed');
    this.emit(modelEvent('FAILED', name, version, reason));
    return served?.close() ?? Promise.resolve();
  }

  /**
   * Shutdown: stops polling, closes every served version (each after its runs in flight).
   * Statuses stay as they were (a READY version stays listed READY); `resolve` answers
   * SERVICE_UNAVAILABLE.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pollTimer);
    await this.loading?.catch(() => undefined);
    await this.polling?.catch(() => undefined);
    await Promise.all([...this.queues.values()].map((q) => q.catch(() => undefined)));
    await Promise.all(this.list().flatMap((m) => m.versions.flatMap((v) => (v.served ? [v.served.close()] : []))));
  }

  private emit(event: ModelEvent): void {
    try {
      this.emitEvent(event);
    } catch (error) {
      this.log.warn({ err: error }, 'a model event listener failed');
    }
  }

  /** Runs `work` after every earlier change of model `name` has settled. */
  private serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(name) ?? Promise.resolve()).catch(() => undefined).then(work);
    this.queues.set(name, run);
    void run.finally(() => {
      if (this.queues.get(name) === run) this.queues.delete(name);
    }).catch(() => undefined);
    return run;
  }

  private entryOf(scanned: ScannedModel): Entry {
    const entry: Entry = { name: scanned.name, manifest: scanned.manifest, manifestError: scanned.manifestError, manifestStamp: scanned.manifestStamp, versions: [] };
    if (!entry.manifestError) this.traffic?.fromManifest(entry.name, entry.manifest.traffic);
    const present = [...scanned.versions.keys()];
    for (const [version, file] of scanned.versions) {
      this.insert(entry, version, file.path, this.initialStatus(entry, version, file, present));
      this.stamps.set(`${entry.name}/${version}`, file.stamp);
    }
    return entry;
  }

  /** The state a version folder starts in: LOADING when it is to be loaded, else why not. */
  private initialStatus(entry: Entry, version: number, file: ScannedVersion, present: readonly number[]): Omit<VersionState, 'version' | 'path'> {
    if (entry.manifestError) return { status: 'FAILED', error: entry.manifestError };
    if (!file.stamp) return { status: 'FAILED', error: `${version}/model.onnx is missing` };
    if (!this.wanted(entry, version, present)) return { status: 'UNLOADED', error: policyReason(entry.manifest.versionPolicy) };
    return { status: 'LOADING' };
  }

  private wanted(entry: Entry, version: number, present: readonly number[]): boolean {
    const explicit = this.explicit.get(`${entry.name}/${version}`);
    if (explicit) return explicit === 'load';
    return versionsToLoad(entry.manifest.versionPolicy, present).has(version);
  }

  private insert(entry: Entry, version: number, path: string, state: Omit<VersionState, 'version' | 'path'> = { status: 'UNLOADED' }): void {
    entry.versions.push(Object.freeze({ version, path, ...state }));
    entry.versions.sort((a, b) => a.version - b.version);
  }

  /** Takes a new model.json when it changed and parses; a refused one is reported and the last good one stays. Returns whether it changed. */
  private refreshManifest(entry: Entry, scanned: ScannedModel): boolean {
    if (scanned.manifestStamp === entry.manifestStamp) return false;
    entry.manifestStamp = scanned.manifestStamp;
    entry.manifestError = scanned.manifestError;
    if (scanned.manifestError) {
      this.log.warn({ model: entry.name, reason: scanned.manifestError }, 'model.json refused; versions serving keep the previous one');
      this.emit(modelEvent('FAILED', entry.name, null, `${scanned.manifestError} (versions serving keep the previous model.json)`));
      return false;
    }
    entry.manifest = scanned.manifest;
    this.traffic?.fromManifest(entry.name, entry.manifest.traffic);
    return true;
  }

  private async reconcile(scanned: ScannedModel): Promise<void> {
    if (this.closed) return;
    let entry = this.models.get(scanned.name);
    if (!entry) {
      entry = this.entryOf({ ...scanned, versions: new Map() });
      this.models.set(entry.name, entry);
      this.log.info({ model: entry.name }, 'new model folder');
    }
    const manifestChanged = this.refreshManifest(entry, scanned);
    const present = [...scanned.versions.keys()];
    const work: Array<Promise<void>> = [];
    for (const state of [...entry.versions]) {
      if (!scanned.versions.has(state.version)) work.push(this.retire(entry, state.version, 'version folder removed', true));
    }
    for (const [version, file] of scanned.versions) {
      const state = entry.versions.find((v) => v.version === version);
      const key = `${entry.name}/${version}`;
      if (!state) this.insert(entry, version, file.path);
      if (!this.wanted(entry, version, present)) {
        const current = this.stateOf(entry.name, version);
        if (current.status !== 'UNLOADED' || current.error === undefined) work.push(this.retire(entry, version, this.explicit.get(key) === 'unload' ? 'unloadModel' : policyReason(entry.manifest.versionPolicy)));
        continue;
      }
      const changed = !state || state.status === 'UNLOADED' || this.stamps.get(key) !== file.stamp || manifestChanged;
      if (changed) work.push(this.bringUp(entry, version, { verify: true, file }));
    }
    await Promise.all(work);
  }

  /**
   * Loads version `version` of `entry` and puts it in traffic: LOADING, session and warm-up,
   * then (when `verify` and another version of the model serves) the replay, then READY. A
   * version already READY keeps serving its previous file until the new one is ready, and
   * keeps it if the new one fails.
   */
  private async bringUp(entry: Entry, version: number, how: { verify: boolean; file?: ScannedVersion }): Promise<void> {
    if (this.closed) return;
    const key = `${entry.name}/${version}`;
    const before = this.stateOf(entry.name, version);
    const previous = before.status === 'READY' ? before.served : undefined;
    if (how.file) this.stamps.set(key, how.file.stamp);
    else if (!this.stamps.has(key)) this.stamps.set(key, scanModel(this.root, entry.name)?.versions.get(version)?.stamp ?? null);
    if (!previous) this.set(entry.name, version, { status: 'LOADING' });
    this.emit(modelEvent('LOADING', entry.name, version, previous ? 'reloading; the previous file serves until the new one is ready' : null));
    const failed = (reason: string, extra: Pick<ModelEvent, 'agreement'> = {}, reported?: VersionState['reported']) => {
      if (previous) {
        this.log.warn({ model: entry.name, version, reason }, 'model version reload failed; the previous file keeps serving');
        this.emit(modelEvent('FAILED', entry.name, version, `${reason} (the previously loaded file keeps serving)`, extra));
      } else {
        this.set(entry.name, version, { status: 'FAILED', error: reason, ...(reported ? { reported } : {}) });
        this.log.warn({ model: entry.name, version, reason }, 'model failed to load');
        this.emit(modelEvent('FAILED', entry.name, version, reason, extra));
      }
    };
    if (entry.manifestError) return failed(entry.manifestError);
    const stamp = this.stamps.get(key);
    if (stamp === null) return failed(`${version}/model.onnx is missing`);
    let served: ServedVersion;
    try {
      served = await loadServedVersion({ name: entry.name, version, path: before.path, manifest: entry.manifest }, { ...this.options, log: this.log });
    } catch (error) {
      return failed(error instanceof Error ? error.message : String(error), {}, error instanceof VersionLoadError ? error.reported : undefined);
    }
    if (this.closed) return void (await served.close());
    const serving = previous ?? entry.versions.find((v) => v.version !== version && v.status === 'READY')?.served;
    if (how.verify && serving && this.servedExamples && this.replayRequests > 0 && entry.manifest.kind !== 'GENERATOR') {
      const refused = await this.verify(served, entry.manifest);
      if (refused) {
        await served.close();
        return failed(refused.reason, { agreement: refused.agreement });
      }
    }
    if (previous) await this.swap(entry.name, version, served);
    else this.set(entry.name, version, { status: 'READY', served });
    this.log.info({ model: entry.name, version }, previous ? 'model version reloaded' : 'model loaded');
    this.emit(modelEvent('READY', entry.name, version));
  }

  /** Replays stored requests on `candidate`: VERIFIED with the figures; returns why it must stay out of traffic, if it must. */
  private async verify(candidate: ServedVersion, manifest: Manifest): Promise<{ reason: string; agreement?: ModelEvent['agreement'] } | undefined> {
    let examples: ServedExample[];
    try {
      examples = await this.servedExamples!(candidate.name, this.replayRequests);
    } catch (error) {
      this.log.warn({ err: error, model: candidate.name }, 'could not read stored requests to replay; the version is not verified');
      return undefined;
    }
    if (examples.length === 0) return undefined;
    try {
      const agreement = await replayAgreement(candidate, examples);
      this.emit(modelEvent('VERIFIED', candidate.name, candidate.version, `replayed ${agreement.replayed} stored requests`, { agreement }));
      const reason = verificationFailure(manifest.verify, agreement);
      return reason ? { reason, agreement } : undefined;
    } catch (error) {
      return { reason: `replay: ${(error as Error).message}` };
    }
  }

  /**
   * Takes a version out of traffic (UNLOADED with `reason`), waits for its runs in flight and
   * releases its session; `remove` also drops it from the list (its folder is gone).
   */
  private async retire(entry: Entry, version: number, reason: string, remove = false): Promise<void> {
    const state = entry.versions.find((v) => v.version === version);
    if (!state) return;
    const served = state.served;
    const wasLoaded = state.status === 'READY' || state.status === 'LOADING';
    this.set(entry.name, version, { status: 'UNLOADED', error: reason });
    await served?.close();
    if (remove) {
      entry.versions.splice(entry.versions.findIndex((v) => v.version === version), 1);
      this.stamps.delete(`${entry.name}/${version}`);
    }
    if (wasLoaded || remove) {
      this.log.info({ model: entry.name, version, reason }, 'model version unloaded');
      this.emit(modelEvent('UNLOADED', entry.name, version, reason));
    }
  }

  private async removeModel(entry: Entry): Promise<void> {
    await Promise.all([...entry.versions].map((v) => this.retire(entry, v.version, 'model folder removed', true)));
    if (this.models.get(entry.name) === entry && entry.versions.length === 0) this.models.delete(entry.name);
  }

  private stateOf(name: string, version: number): VersionState {
    const state = this.models.get(name)?.versions.find((v) => v.version === version);
    if (!state) throw new ModelNotFoundError(name, version);
    return state;
  }

  private set(name: string, version: number, next: Omit<VersionState, 'version' | 'path'>): void {
    const versions = this.models.get(name)!.versions;
    const i = versions.findIndex((v) => v.version === version);
    versions[i] = Object.freeze({ version, path: versions[i]!.path, ...next });
  }
}
