import DataLoader from 'dataloader';
import type { FeedbackRecord, FeedbackStore } from '../serving/feedback.ts';
import type { PredictionStore } from '../serving/prediction-store.ts';
import type { PredictionRecord } from '../serving/records.ts';

/** Per-request loaders: every lookup made while resolving one operation is batched into one query. */
export interface Loaders {
  predictionById: DataLoader<string, PredictionRecord | null>;
  /** Feedback of predictions the caller already holds (so no ownership filter of its own). */
  feedbackByPredictionId: DataLoader<string, FeedbackRecord | null>;
}

/**
 * `apiKeyId`: the caller sees only that key's predictions (another key's id loads as null,
 * like an unknown one). Without `feedback`, no prediction has any.
 */
export function createLoaders(predictions: PredictionStore, apiKeyId?: string, feedback?: FeedbackStore): Loaders {
  return {
    predictionById: new DataLoader(async (ids) => (await predictions.findByIds(ids, apiKeyId)).map((r) => r ?? null)),
    feedbackByPredictionId: new DataLoader(async (ids) => (feedback ? (await feedback.findByPredictionIds(ids)).map((r) => r ?? null) : ids.map(() => null))),
  };
}
