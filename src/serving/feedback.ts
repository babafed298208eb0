import { BadUserInputError, type InputIssue } from '../errors.ts';
import type { Model } from '../inference/types.ts';
import { meaningOf } from './outcome.ts';
import type { PredictionRecord } from './records.ts';

/** Ground truth attached to a stored prediction, as callers see it. */
export interface FeedbackRecord {
  predictionId: string;
  /** Classifiers: the true label. */
  label: string | null;
  /** Regressors: the true value. */
  value: number | null;
  /** When it was recorded (last replaced). */
  recordedAt: Date;
}

/**
 * What is stored: the feedback, plus what quality is computed from without reading the
 * history: the prediction's model, version, time and owner, the served answer, and the
 * regression error, decided once here.
 */
export interface NewFeedback extends FeedbackRecord {
  modelName: string;
  version: number;
  predictedAt: Date;
  servedLabel: string | null;
  servedValue: number | null;
  absoluteError: number | null;
  squaredError: number | null;
  /** The prediction's API key (ownership filters on it). */
  apiKeyId: string | null;
  /** The API key recording the feedback. */
  recordedBy: string | null;
}

/** One cell of a confusion matrix: feedback said `actual` where the model served `predicted`. */
export interface ConfusionCell {
  actual: string;
  predicted: string;
  count: number;
}

/** Live quality of one model version, from the feedback on its predictions. */
export interface Quality {
  /** Predictions with feedback. */
  count: number;
  /** Classifiers: share of labelled feedback equal to the served label; null without any. */
  accuracy: number | null;
  /** Regressors: mean absolute error of the served values; null without any value feedback. */
  mae: number | null;
  /** Regressors: root mean squared error; null without any value feedback. */
  rmse: number | null;
  /** Classifiers: the non-zero cells, ordered by actual then predicted label. */
  confusionMatrix: ConfusionCell[];
}

export interface QualityOptions {
  /** Only predictions made before this time (`since` is inclusive, `until` exclusive). */
  until?: Date | null;
  /** Only the predictions of this API key (a key without the admin scope: its own). */
  apiKeyId?: string;
}

/** Which predictions' feedback counts: made in [since, until), of one key or of all. */
export interface QualityWindow extends QualityOptions {
  since?: Date | null;
}

/** A model version, as quality is asked for it. */
export interface VersionKey {
  model: string;
  version: number;
}

/** Where feedback lives (store/feedback-repository.ts). */
export interface FeedbackStore {
  /** Inserts the feedback, or replaces the prediction's earlier one. */
  save(feedback: NewFeedback): Promise<FeedbackRecord>;
  /** One query for all ids; aligned with `ids`, undefined where none was recorded. */
  findByPredictionIds(ids: readonly string[]): Promise<Array<FeedbackRecord | undefined>>;
  /**
   * Quality of the predictions `model` version `version` made at or after `since`: one
   * aggregate query in the database (rows are never loaded). The traffic guard's input.
   */
  quality(model: string, version: number, since?: Date | null, options?: QualityOptions): Promise<Quality>;
  /** The quality of several versions over one window, aligned with `versions`: still one aggregate query. */
  qualities(versions: readonly VersionKey[], window: QualityWindow): Promise<Quality[]>;
}

export interface FeedbackInput {
  label?: string | null;
  value?: number | null;
}

export type FeedbackService = ReturnType<typeof createFeedbackService>;

/**
 * Checks feedback against what the prediction was and stores it. A classifier's prediction
 * takes a `label` among its model's labels (as they were when it was made); a regressor's a
 * finite `value`; other kinds none. Recording again replaces the earlier feedback.
 */
export function createFeedbackService(deps: { store: FeedbackStore; models: { get(name: string): Model | undefined } }) {
  const { store, models } = deps;
  return {
    async record(prediction: PredictionRecord, input: FeedbackInput, recordedBy: string | null): Promise<FeedbackRecord> {
      const meaning = meaningOf(prediction, models);
      const kind = meaning?.interpretation.kind ?? 'GENERIC';
      const issues: InputIssue[] = [];
      const { label = null, value = null } = input;
      if (kind === 'CLASSIFIER') {
        const labels = meaning!.outcome.scores?.map((s) => s.label) ?? [];
        const known = labels.map((l) => `\`${l}\``).join(', ');
        if (label === null) issues.push({ path: ['label'], message: `expected the true label, one of ${known}` });
        else if (!labels.includes(label)) issues.push({ path: ['label'], message: `expected one of ${known}, got \`${label}\`` });
        if (value !== null) issues.push({ path: ['value'], message: 'a CLASSIFIER prediction takes `label`, not `value`' });
      } else if (kind === 'REGRESSOR') {
        if (value === null) issues.push({ path: ['value'], message: 'expected the true value, a finite number' });
        else if (!Number.isFinite(value)) issues.push({ path: ['value'], message: `expected a finite number, got ${value}` });
        if (label !== null) issues.push({ path: ['label'], message: 'a REGRESSOR prediction takes `value`, not `label`' });
      } else {
        issues.push({ path: ['predictionId'], message: `prediction \`${prediction.id}\` is from a ${kind} model (\`${prediction.modelName}\`); feedback needs a CLASSIFIER or REGRESSOR prediction` });
      }
      if (issues.length > 0) throw new BadUserInputError(issues);

      const servedValue = kind === 'REGRESSOR' ? meaning!.outcome.value : null;
      const error = value !== null && servedValue !== null ? value - servedValue : null;
      return store.save({
        predictionId: prediction.id,
        modelName: prediction.modelName,
        version: prediction.version,
        predictedAt: prediction.createdAt,
        servedLabel: kind === 'CLASSIFIER' ? meaning!.outcome.label : null,
        servedValue,
        label,
        value,
        absoluteError: error === null ? null : Math.abs(error),
        squaredError: error === null ? null : error * error,
        recordedAt: new Date(),
        apiKeyId: prediction.apiKeyId ?? null,
        recordedBy,
      });
    },
    quality: store.quality,
  };
}
