import type * as ort from 'onnxruntime-node';
import { fromResults, toFeeds } from './tensors.ts';
import type { ModelVersion, TensorData } from './types.ts';

/** One ONNX run on a READY version; every inference goes through here so runs are counted. */
export function runSession(version: ModelVersion, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
  if (!version.session) throw new Error(`model \`${version.modelName}\` version ${version.version} has no session`);
  version.stats.runs++;
  return version.session.run(feeds);
}

/** Runs one request on its own. */
export async function runAlone(version: ModelVersion, tensors: TensorData[]): Promise<TensorData[]> {
  version.stats.recordBatch(1, tensors[0]?.shape[0] ?? 1);
  return fromResults(version, await runSession(version, toFeeds(tensors)));
}

/** A predict request's inference: through the version's batcher when it has one. */
export function infer(version: ModelVersion, tensors: TensorData[]): Promise<TensorData[]> {
  return version.batcher ? version.batcher(tensors) : runAlone(version, tensors);
}
