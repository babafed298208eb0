import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { ModelNotReadyError } from '../errors.ts';
import { createBatcher } from './batcher.ts';
import { createBulkLane } from './bulk-lane.ts';
import { decideBatching } from './batching-policy.ts';
import type { Manifest } from './manifest.ts';
import { applyManifest, specOf } from './session-signature.ts';
import { VersionStats, type InferenceObserver } from './stats.ts';
import { fromResults, toFeeds } from './tensors.ts';
import type { RunOptions, ServedVersion, TensorData, TensorSpec, VersionDescriptor } from './types.ts';
import { warmUp } from './warmup.ts';

export interface LoadOptions {
  log: Logger;
  /** Threads per session for one operator. Small models are fastest on one. @default 1 */
  intraOpNumThreads?: number;
  /** Dynamic batching for the models that allow it (see batching-policy.ts). @default true */
  batching?: boolean;
  /** Told of every ONNX run and batch (metrics); unset: nothing is timed. */
  observer?: InferenceObserver;
}

/** Loading failed; carries what the session reported before, if it got that far. */
export class VersionLoadError extends Error {
  override readonly name = 'VersionLoadError';
  constructor(
    message: string,
    readonly reported?: { inputs: TensorSpec[]; outputs: TensorSpec[] },
  ) {
    super(message);
  }
}

/**
 * Creates the session of `<path>` (read off the main thread: a slow disk never stalls
 * requests), checks it against the manifest, warms it up and decides batching. Throws
 * VersionLoadError with the reason when the version cannot be served.
 */
export async function loadServedVersion(
  target: { name: string; version: number; path: string; manifest: Manifest },
  options: LoadOptions,
): Promise<ServedVersion> {
  const { name, version, manifest } = target;
  let session: ort.InferenceSession;
  let digest = '';
  try {
    const bytes = await readFile(target.path);
    digest = createHash('sha256').update(bytes).digest('base64url');
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.intraOpNumThreads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // The arena keeps freed blocks per session; for small models it only holds memory.
      enableCpuMemArena: false,
    });
  } catch (error) {
    throw new VersionLoadError(error instanceof Error ? error.message : String(error));
  }
  const shapes: { inputs: TensorSpec[]; outputs: TensorSpec[] } = { inputs: [], outputs: [] };
  try {
    shapes.inputs = session.inputMetadata.map((m) => specOf(m, 'input'));
    shapes.outputs = session.outputMetadata.map((m) => specOf(m, 'output'));
    applyManifest(manifest, shapes);
    await warmUp(session, { name, version, inputs: shapes.inputs }, manifest.warmup, options.log);
  } catch (error) {
    await session.release();
    throw new VersionLoadError(error instanceof Error ? error.message : String(error), shapes);
  }
  const batching = decideBatching(shapes, manifest.batching, options.batching !== false);
  if (batching.warning) options.log.warn({ model: name, version, reason: batching.warning }, 'batching is off');
  return createServedVersion(session, { name, version, manifest, ...shapes, batching, loadedAt: new Date(), digest }, options.observer);
}

const frozenSpecs = (specs: readonly TensorSpec[]) =>
  Object.freeze(specs.map((s) => Object.freeze({ ...s, shape: Object.freeze([...s.shape]), dimNames: Object.freeze([...s.dimNames]) }) as TensorSpec));

/**
 * Serves one loaded session. Every run and step (online or bulk) is counted in `stats` and
 * tracked until it settles, so `close()` can wait for the runs in flight and the queued bulk
 * requests before releasing the session.
 */
export function createServedVersion(session: ort.InferenceSession, descriptor: VersionDescriptor, observer?: InferenceObserver): ServedVersion {
  const { name, version } = descriptor;
  const observed = observer?.forVersion(name, version);
  const stats = new VersionStats(observed);
  const runSession = (feeds: Record<string, ort.Tensor>) => {
    stats.runs++;
    if (!observed) return session.run(feeds);
    const started = performance.now();
    const run = session.run(feeds);
    // Observed when the run settles, failed runs included: they took the time too.
    const settled = () => observed.run((performance.now() - started) / 1000);
    run.then(settled, settled);
    return run;
  };
  const runStacked = async (tensors: readonly TensorData[]) => fromResults(descriptor, await runSession(toFeeds(tensors)));
  const runAlone = (tensors: readonly TensorData[]) => {
    stats.recordBatch(1, tensors[0]?.shape[0] ?? 1);
    return runStacked(tensors);
  };
  const batcher = descriptor.batching.enabled ? createBatcher({ runAlone, runStacked, stats }, descriptor.batching) : undefined;
  const lane = createBulkLane({ runAlone, runStacked, stats }, { maxBatchSize: batcher ? descriptor.batching.maxBatchSize : 0 });

  let inFlight = 0;
  let idle: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  async function tracked<T>(work: () => Promise<T>): Promise<T> {
    if (closing) throw new ModelNotReadyError(name, version, 'CLOSED', 'the version was replaced or the server is shutting down');
    inFlight++;
    try {
      return await work();
    } finally {
      if (--inFlight === 0) idle?.();
    }
  }

  return Object.freeze({
    name,
    version,
    manifest: Object.freeze(descriptor.manifest),
    inputs: frozenSpecs(descriptor.inputs),
    outputs: frozenSpecs(descriptor.outputs),
    batching: Object.freeze({ ...descriptor.batching }),
    loadedAt: descriptor.loadedAt,
    digest: descriptor.digest,
    stats,
    run: (tensors: readonly TensorData[], options?: RunOptions) =>
      tracked(() => (options?.priority === 'bulk' ? lane.bulk(tensors) : lane.online(() => (batcher ? batcher(tensors) : runAlone(tensors))))),
    step: (feeds: Record<string, ort.Tensor>) => tracked(() => runSession(feeds)),
    close() {
      closing ??= (async () => {
        if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
        await session.release();
      })();
      return closing;
    },
  });
}
