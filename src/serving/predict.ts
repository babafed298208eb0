import { performance } from 'node:perf_hooks';
import { newId } from './ids.ts';
import type { ModelRepository } from '../inference/repository.ts';
import { interpretationOf, outcomeOf } from '../inference/interpretation.ts';
import { requestTensors, type PredictRequest } from '../inference/tensors.ts';
import type { History } from './history.ts';
import { responseCacheKey, type ResponseCache } from '../cache/response-cache.ts';
import type { PredictionRecord } from './records.ts';

export interface PredictInput extends PredictRequest {
  model: string;
  version?: number | null;
  /** The API key making it (stored with the row); null or absent when auth is off. */
  apiKeyId?: string | null;
}

export type PredictionService = ReturnType<typeof createPredictionService>;

/**
 * predict = resolve the model version, check the request, run the session, commit the
 * history row. It answers only after the commit: an acknowledged prediction is never
 * lost. Nothing is written when any step before the commit fails. Subscribers hear of
 * the prediction only after the commit.
 */
export function createPredictionService(deps: { models: ModelRepository; history: History; cache?: ResponseCache }) {
  const { models, history, cache } = deps;
  return {
    async predict(input: PredictInput): Promise<PredictionRecord> {
      const started = performance.now();
      const version = models.resolve(input.model, input.version);
      const inputs = requestTensors(version, input);
      const caching = cache && version.manifest.responseCache;
      const key = caching ? responseCacheKey(version.name, version.version, inputs) : undefined;
      // The cache only saves work: when it fails, the model answers.
      const hit = key ? await cache!.get(key).catch(() => undefined) : undefined;
      const outputs = hit ?? (await version.run(inputs));
      if (key && !hit) void cache!.set(key, outputs, caching!.ttlMs).catch(() => undefined);
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
      return record;
    },
  };
}
