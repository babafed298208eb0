import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ModelNotFoundError, ModelNotReadyError, ServiceUnavailableError } from '../errors.ts';
import { EMPTY_MANIFEST, manifestSchema, type Manifest } from './manifest.ts';
import { modelEvent, type ModelEventSink } from './model-events.ts';
import { loadServedVersion, VersionLoadError, type LoadOptions } from './served-version.ts';
import type { Model, ServedVersion, VersionState } from './types.ts';

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
};

interface Entry {
  readonly name: string;
  readonly manifest: Manifest;
  /** Frozen states, replaced by `set` only. */
  readonly versions: VersionState[];
}

/**
 * The Triton-style model repository and the registry of served versions:
 * `<root>/<name>/<version>/model.onnx` with an optional `<root>/<name>/model.json`. The
 * folder is scanned once; `load()` then loads every version. A version that fails is kept
 * with status FAILED and the reason; it never stops the others. A version's status changes
 * here only: on load, `swap` and `fail`.
 */
export class ModelRepository {
  readonly root: string;
  private readonly models = new Map<string, Entry>();
  private loading: Promise<void> | undefined;
  private closed = false;
  private readonly log: Logger;
  private readonly options: Omit<LoadOptions, 'log'>;
  private readonly emit: ModelEventSink;

  constructor(root: string, log: Logger, options: ModelRepositoryOptions = {}) {
    this.root = resolve(root);
    this.log = log;
    const { only, onEvent, ...loadOptions } = options;
    this.options = loadOptions;
    this.emit = onEvent ?? (() => {});
    for (const model of scan(this.root, only)) this.models.set(model.name, model);
  }

  list(): Model[] {
    return [...this.models.values()];
  }

  get(name: string): Model | undefined {
    return this.models.get(name);
  }

  /** True once every version is READY or FAILED. */
  get loaded(): boolean {
    return this.list().every((m) => m.versions.every((v) => v.status !== 'LOADING'));
  }

  /** The served version a request should run on, or the error the client should see. */
  resolve(name: string, version?: number | null): ServedVersion {
    const model = this.models.get(name);
    if (!model) throw new ModelNotFoundError(name);
    const chosen =
      version === undefined || version === null
        ? defaultVersionOf(model)
        : model.versions.find((v) => v.version === version);
    if (!chosen) throw new ModelNotFoundError(name, version ?? undefined);
    if (this.closed) throw new ServiceUnavailableError();
    if (chosen.status !== 'READY' || !chosen.served) {
      throw new ModelNotReadyError(name, chosen.version, chosen.status, chosen.error);
    }
    return chosen.served;
  }

  /** Loads every version (once); resolves when all are READY or FAILED. */
  load(): Promise<void> {
    this.loading ??= Promise.all(
      [...this.models.values()].flatMap((model) => model.versions.map((v) => this.loadVersion(model, v))),
    ).then(() => undefined);
    return this.loading;
  }

  /**
   * Makes `next` serve `name` version `version` at once (READY, any error cleared): requests
   * resolved from now on run on it. Then waits for the previous served version to finish
   * its runs in flight and release its session. The seam for hot reload and traffic splits.
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
   * Shutdown: closes every served version (each after its runs in flight). Statuses stay as
   * they were (a READY version stays listed READY); `resolve` answers SERVICE_UNAVAILABLE.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.loading?.catch(() => undefined);
    await Promise.all(this.list().flatMap((m) => m.versions.flatMap((v) => (v.served ? [v.served.close()] : []))));
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

  private async loadVersion(model: Entry, entry: VersionState): Promise<void> {
    if (entry.status === 'FAILED') {
      this.emit(modelEvent('FAILED', model.name, entry.version, entry.error ?? null));
      return;
    }
    this.emit(modelEvent('LOADING', model.name, entry.version));
    try {
      const served = await loadServedVersion({ name: model.name, version: entry.version, path: entry.path, manifest: model.manifest }, { ...this.options, log: this.log });
      this.set(model.name, entry.version, { status: 'READY', served });
      this.log.info({ model: model.name, version: entry.version }, 'model loaded');
      this.emit(modelEvent('READY', model.name, entry.version));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      const reported = error instanceof VersionLoadError ? error.reported : undefined;
      this.set(model.name, entry.version, { status: 'FAILED', error: reason, ...(reported ? { reported } : {}) });
      this.log.warn({ model: model.name, version: entry.version, reason }, 'model failed to load');
      this.emit(modelEvent('FAILED', model.name, entry.version, reason));
    }
  }
}

function scan(root: string, only: readonly string[] | undefined): Entry[] {
  if (!existsSync(root)) return [];
  const models: Entry[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    if (name.startsWith('.') || (only && !only.includes(name)) || !statSync(dir).isDirectory()) continue;
    let manifest = EMPTY_MANIFEST;
    let manifestError: string | undefined;
    const manifestPath = join(dir, 'model.json');
    if (existsSync(manifestPath)) {
      try {
        const parsed = manifestSchema.safeParse(JSON.parse(readFileSync(manifestPath, 'utf8')));
        if (parsed.success) manifest = parsed.data;
        else manifestError = `model.json: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
      } catch (error) {
        manifestError = `model.json: ${(error as Error).message}`;
      }
    }
    const versions = readdirSync(dir)
      .filter((v) => /^[1-9]\d*$/.test(v) && statSync(join(dir, v)).isDirectory())
      .map(Number)
      .sort((a, b) => a - b)
      .map((version): VersionState => {
        const path = join(dir, String(version), 'model.onnx');
        if (manifestError) return Object.freeze({ version, path, status: 'FAILED', error: manifestError });
        if (!existsSync(path)) return Object.freeze({ version, path, status: 'FAILED', error: `${version}/model.onnx is missing` });
        return Object.freeze({ version, path, status: 'LOADING' });
      });
    if (versions.length === 0 && !existsSync(manifestPath)) continue; // not a model folder
    models.push({ name, manifest, versions });
  }
  return models;
}
