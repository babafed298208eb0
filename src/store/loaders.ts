import DataLoader from 'dataloader';
import type { PredictionStore } from '../serving/prediction-store.ts';
import type { PredictionRecord } from '../serving/records.ts';

/** Per-request loaders: every lookup made while resolving one operation is batched into one query. */
export interface Loaders {
  predictionById: DataLoader<string, PredictionRecord | null>;
}

export function createLoaders(predictions: PredictionStore): Loaders {
  return {
    predictionById: new DataLoader(async (ids) => (await predictions.findByIds(ids)).map((r) => r ?? null)),
  };
}
