import DataLoader from 'dataloader';
import type { PredictionStore } from '../serving/prediction-store.ts';
import type { PredictionRecord } from '../serving/records.ts';

/** Per-request loaders: every lookup made while resolving one operation is batched into one query. */
export interface Loaders {
  predictionById: DataLoader<string, PredictionRecord | null>;
}

/** `apiKeyId`: the caller sees only that key's predictions (another key's id loads as null, like an unknown one). */
export function createLoaders(predictions: PredictionStore, apiKeyId?: string): Loaders {
  return {
    predictionById: new DataLoader(async (ids) => (await predictions.findByIds(ids, apiKeyId)).map((r) => r ?? null)),
  };
}
