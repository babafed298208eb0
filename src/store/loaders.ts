import DataLoader from 'dataloader';
import type { FeedbackRecord, FeedbackStore, Quality } from '../serving/feedback.ts';
import type { PredictionStore } from '../serving/prediction-store.ts';
import type { PredictionRecord } from '../serving/records.ts';
import type { ShadowResultRecord, ShadowStore } from '../serving/shadow.ts';

/** A version's quality over a window, as `ModelVersion.quality` asks for it. */
export interface QualityKey {
  model: string;
  version: number;
  since: Date | null;
  until: Date | null;
}

/** Per-request loaders: every lookup made while resolving one operation is batched into one query. */
export interface Loaders {
  predictionById: DataLoader<string, PredictionRecord | null>;
  /** Feedback of predictions the caller already holds (so no ownership filter of its own). */
  feedbackByPredictionId: DataLoader<string, FeedbackRecord | null>;
  /** Quality of the caller's predictions (every key's for admin): one query per distinct window, whatever the number of versions. */
  qualityByVersion: DataLoader<QualityKey, Quality, string>;
  /** Shadow results of predictions the caller already holds (so no ownership filter of its own). */
  shadowByPredictionId: DataLoader<string, ShadowResultRecord | null>;
}

const windowOf = (key: QualityKey) => JSON.stringify([key.since?.getTime() ?? null, key.until?.getTime() ?? null]);

const NO_FEEDBACK: Quality = Object.freeze({ count: 0, accuracy: null, mae: null, rmse: null, confusionMatrix: [] });

/**
 * `apiKeyId`: the caller sees only that key's predictions (another key's id loads as null,
 * like an unknown one) and their feedback's quality. Without `feedback` (`shadow`), no prediction has any.
 */
export function createLoaders(predictions: PredictionStore, apiKeyId?: string, feedback?: FeedbackStore, shadow?: ShadowStore): Loaders {
  return {
    shadowByPredictionId: new DataLoader(async (ids) => (shadow ? (await shadow.findByPredictionIds(ids)).map((r) => r ?? null) : ids.map(() => null))),
    predictionById: new DataLoader(async (ids) => (await predictions.findByIds(ids, apiKeyId)).map((r) => r ?? null)),
    feedbackByPredictionId: new DataLoader(async (ids) => (feedback ? (await feedback.findByPredictionIds(ids)).map((r) => r ?? null) : ids.map(() => null))),
    qualityByVersion: new DataLoader(
      async (keys) => {
        const windows = new Map<string, QualityKey[]>();
        for (const key of keys) windows.set(windowOf(key), [...(windows.get(windowOf(key)) ?? []), key]);
        const results = new Map<QualityKey, Quality>();
        for (const group of windows.values()) {
          const { since, until } = group[0]!;
          const qualities = feedback ? await feedback.qualities(group.map((k) => ({ model: k.model, version: k.version })), { since, until, apiKeyId }) : group.map(() => NO_FEEDBACK);
          group.forEach((key, i) => results.set(key, qualities[i]!));
        }
        return keys.map((key) => results.get(key)!);
      },
      { cacheKeyFn: (key) => `${key.model}\u0000${key.version}\u0000${windowOf(key)}` },
    ),
  };
}
