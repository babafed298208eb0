import { performance } from 'node:perf_hooks';
import { ModelNotReadyError } from '../errors.ts';
import { newId } from './ids.ts';
import type { ModelRepository } from '../inference/repository.ts';
import { interpretationOf, outcomeOf } from '../inference/interpretation.ts';
import { requestTensors, type PredictRequest } from '../inference/tensors.ts';
import type { History } from './history.ts';
import { responseCacheKey, type ResponseCache } from '../cache/response-cache.ts';
import type { PredictionRecord } from './records.ts';
import type { ServedVersion, TensorData } from '../inference/types.ts';

export interface PredictInput extends PredictRequest {
  model: string;
  version?: number | null;
  /** The API key making it (stored with the row); null or absent when auth is off. */
  apiKeyId?: string | null;
  /** Decides the version when the model has a traffic split and `version` is absent: the request id, so a retry lands on the same version. */
  routeKey?: string;
}

/** Told of every inference run a predict made (not of requests refused before one): the rollout guard's error rate and latency. */
export type RunOutcomeSink = (model: string, version: number, ok: boolean, latencyMs: number) => void;

export type PredictionService = ReturnType<typeof createPredictionService>;

/**
 * predict = resolve the model version, check the request, run the session, commit the
 * history row. It answers only after the commit: an acknowledged prediction is never
 * lost. Nothing is written when any step before the commit fails. Subscribers hear of
 * the prediction only after the commit.
 */
export function createPredictionService(deps: {
  models: ModelRepository;
  history: History;
  cache?: ResponseCache;
  /** Told of every inference run (the rollout guard's error rate and latency). */
  onRun?: RunOutcomeSink;
  /** Shadow traffic (serving/shadow.ts): told of each committed prediction; returns at once and never throws. */
  shadow?: { mirror(input: PredictInput, primary: PredictionRecord): void };
}) {
  const { models, history, cache, onRun, shadow } = deps;
  const run = async (version: ServedVersion, inputs: TensorData[]) => {
    if (!onRun) return version.run(inputs);
    const started = performance.now();
    try {
      const outputs = await version.run(inputs);
      onRun(version.name, version.version, true, performance.now() - started);
      return outputs;
    } catch (error) {
      // A drained version is not the version's fault: the request runs again on the one serving now.
      if (!(error instanceof ModelNotReadyError)) onRun(version.name, version.version, false, performance.now() - started);
      throw error;
    }
  };
  return {
    async predict(input: PredictInput): Promise<PredictionRecord> {
      const started = performance.now();
      const resolved = models.resolve(input.model, input.version, input.routeKey);
      let version = resolved;
      let inputs = requestTensors(version, input);
      const caching = cache && version.manifest.responseCache;
      const key = caching ? responseCacheKey(version.name, version.version, version.digest, inputs) : undefined;
      // The cache only saves work: when it fails, the model answers.
      const hit = key ? await cache!.get(key).catch(() => undefined) : undefined;
      let outputs = hit;
      if (!outputs) {
        try {
          outputs = await run(version, inputs);
        } catch (error) {
          // Hot reload: the version resolved was taken out of traffic (drained) before this
          // request reached it. A request that named no version runs on the one serving now.
          const now = input.version == null && error instanceof ModelNotReadyError ? models.resolve(input.model, null, input.routeKey) : version;
          if (now === version) throw error;
          version = now;
          inputs = requestTensors(version, input);
          outputs = await run(version, inputs);
        }
      }
      // A reload of the same version number is a different model: only the version resolved first may fill its key.
      if (key && !hit && version === resolved) void cache!.set(key, outputs, caching!.ttlMs).catch(() => undefined);
      const interpretation = interpretationOf(version.manifest, version.outputs[0]?.name);
      const record: PredictionRecord = {
        id: newId(),
        modelName: version.name,
        version: version.version,
        createdAt: new Date(),
        latencyMs: performance.now() - started,
        inputs,
        outputs,
        interpretation,
        outcome: outcomeOf(outputs, interpretation),
        cached: hit !== undefined,
        apiKeyId: input.apiKeyId ?? null,
      };
      await history.append(record);
      shadow?.mirror(input, record);
      return record;
    },
  };
}
