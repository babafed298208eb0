import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { ModelNotFoundError, ModelNotReadyError } from '../errors.ts';
import { datatypeFromOrt } from './datatypes.ts';
import { EMPTY_MANIFEST, manifestSchema, type Manifest } from './manifest.ts';
import { createBatcher } from './batcher.ts';
import { decideBatching } from './batching-policy.ts';
import { checkGenerator } from './generator-interface.ts';
import { VersionStats } from './stats.ts';
import type { Model, ModelVersion, TensorSpec } from './types.ts';
import { warmUp } from './warmup.ts';

/** The version served when a request names none: the manifest's, else the newest READY one, else the newest. */
export function defaultVersionOf(model: Model): ModelVersion | undefined {
  const { versions, manifest } = model;
  if (manifest.defaultVersion !== undefined) return versions.find((v) => v.version === manifest.defaultVersion);
  return versions.findLast((v) => v.status === 'READY') ?? versions.at(-1);
}

export interface ModelRepositoryOptions {
  /** Threads per session for one operator. Small models are fastest on one. @default 1 */
  intraOpNumThreads?: number;
  /** Dynamic batching for the models that allow it (see batching-policy.ts). @default true */
  batching?: boolean;
}

/**
 * The Triton-style model repository: `<root>/<name>/<version>/model.onnx` with an
 * optional `<root>/<name>/model.json`. The folder is scanned once; `load()` then
 * creates every session. A model that fails is kept with status FAILED and the
 * reason; it never stops the others.
 */
export class ModelRepository {
  readonly root: string;
  private readonly models = new Map<string, Model>();
  private loading: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly options: ModelRepositoryOptions;

  constructor(root: string, log: Logger, options: ModelRepositoryOptions = {}) {
    this.root = resolve(root);
    this.log = log;
    this.options = options;
    for (const model of scan(this.root)) this.models.set(model.name, model);
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

  /** The version a request should run on, or the error the client should see. */
  resolve(name: string, version?: number | null): ModelVersion {
    const model = this.models.get(name);
    if (!model) throw new ModelNotFoundError(name);
    const chosen =
      version === undefined || version === null
        ? defaultVersionOf(model)
        : model.versions.find((v) => v.version === version);
    if (!chosen) throw new ModelNotFoundError(name, version ?? undefined);
    if (chosen.status !== 'READY' || !chosen.session) {
      throw new ModelNotReadyError(name, chosen.version, chosen.status, chosen.error);
    }
    return chosen;
  }

  /** Creates every session (once); resolves when all versions are READY or FAILED. */
  load(): Promise<void> {
    this.loading ??= Promise.all(
      this.list().flatMap((model) => model.versions.map((v) => this.loadVersion(model, v))),
    ).then(() => undefined);
    return this.loading;
  }

  private async loadVersion(model: Model, entry: ModelVersion): Promise<void> {
    if (entry.status === 'FAILED') return;
    try {
      // Read off the main thread: a slow disk (or a file still being written) never stalls requests.
      const bytes = await readFile(entry.path);
      const session = await ort.InferenceSession.create(bytes, {
        intraOpNumThreads: this.options.intraOpNumThreads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        // The arena keeps freed blocks per session; for small models it only holds memory.
        enableCpuMemArena: false,
      });
      try {
        entry.inputs = session.inputMetadata.map((m) => specOf(m, 'input'));
        entry.outputs = session.outputMetadata.map((m) => specOf(m, 'output'));
        applyManifest(model.manifest, entry);
        await warmUp(session, entry, model.manifest.warmup, this.log);
      } catch (error) {
        await session.release();
        throw error;
      }
      entry.session = session;
      entry.batching = decideBatching(entry, model.manifest.batching, this.options.batching !== false);
      if (entry.batching.warning) this.log.warn({ model: model.name, version: entry.version, reason: entry.batching.warning }, 'batching is off');
      if (entry.batching.enabled) entry.batcher = createBatcher(entry, entry.batching);
      entry.loadedAt = new Date();
      entry.status = 'READY';
      this.log.info({ model: model.name, version: entry.version }, 'model loaded');
    } catch (error) {
      entry.status = 'FAILED';
      entry.error = error instanceof Error ? error.message : String(error);
      this.log.warn({ model: model.name, version: entry.version, reason: entry.error }, 'model failed to load');
    }
  }

  async close(): Promise<void> {
    await this.loading?.catch(() => undefined);
    for (const model of this.models.values()) {
      for (const v of model.versions) {
        const session = v.session;
        v.session = undefined;
        if (v.status === 'READY') v.status = 'LOADING';
        await session?.release();
      }
    }
  }
}

function scan(root: string): Model[] {
  if (!existsSync(root)) return [];
  const models: Model[] = [];
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    if (name.startsWith('.') || !statSync(dir).isDirectory()) continue;
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
      .map((version): ModelVersion => {
        const path = join(dir, String(version), 'model.onnx');
        const entry: ModelVersion = { modelName: name, version, path, status: 'LOADING', inputs: [], outputs: [], stats: new VersionStats() };
        if (manifestError) Object.assign(entry, { status: 'FAILED', error: manifestError });
        else if (!existsSync(path)) Object.assign(entry, { status: 'FAILED', error: `${version}/model.onnx is missing` });
        return entry;
      });
    if (versions.length === 0 && !existsSync(manifestPath)) continue; // not a model folder
    models.push({ name, manifest, versions });
  }
  return models;
}

function specOf(meta: ort.InferenceSession.ValueMetadata, role: 'input' | 'output'): TensorSpec {
  if (!meta.isTensor) throw new Error(`${role} \`${meta.name}\` is not a tensor`);
  const datatype = datatypeFromOrt(meta.type);
  if (!datatype) throw new Error(`${role} \`${meta.name}\` has element type ${meta.type}, which the gateway does not serve`);
  // ORT reports a fixed dimension as a number, a named one as its name, an unnamed one as "".
  return {
    name: meta.name,
    datatype,
    shape: meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
    dimNames: meta.shape.map((d) => (typeof d === 'string' && d !== '' ? d : null)),
  };
}

/** Checks the manifest against what the session reports and attaches feature names. */
function applyManifest(manifest: Manifest, entry: ModelVersion): void {
  if (manifest.features) {
    const input = manifest.input
      ? entry.inputs.find((i) => i.name === manifest.input)
      : entry.inputs.length === 1
        ? entry.inputs[0]
        : undefined;
    if (!input) throw new Error(`model.json: features need \`input\` to name one of the model's inputs`);
    const width = input.shape.at(-1);
    if (width !== undefined && width !== -1 && width !== manifest.features.length) {
      throw new Error(`model.json lists ${manifest.features.length} features but input \`${input.name}\` has ${width} columns`);
    }
    input.featureNames = manifest.features.map((f) => f.name);
  }
  if (manifest.output && !entry.outputs.some((o) => o.name === manifest.output)) {
    throw new Error(`model.json: output \`${manifest.output}\` is not an output of the model`);
  }
  if (manifest.labels) {
    const output = entry.outputs.find((o) => o.name === manifest.output) ?? entry.outputs[0];
    const width = output?.shape.at(-1);
    if (width !== undefined && width !== -1 && width !== manifest.labels.length) {
      throw new Error(`model.json lists ${manifest.labels.length} labels but output \`${output?.name}\` has ${width} classes`);
    }
  }
  checkGenerator(manifest, entry);
}
