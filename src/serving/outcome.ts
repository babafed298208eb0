import { interpretationOf, outcomeOf, type Interpretation, type Outcome } from '../inference/interpretation.ts';
import type { Model } from '../inference/types.ts';
import type { PredictionRecord } from './records.ts';

/** What a stored prediction meant and said. */
export interface Meaning {
  interpretation: Interpretation;
  outcome: Outcome;
}

/**
 * The meaning decided when the prediction was made (label, scores and value); rows stored
 * before the meaning was stored are read with the model's current manifest, and have none
 * once the model has left the repository.
 */
export function meaningOf(record: PredictionRecord, models: { get(name: string): Model | undefined }): Meaning | null {
  if (record.interpretation) return { interpretation: record.interpretation, outcome: record.outcome ?? outcomeOf(record.outputs, record.interpretation) };
  const model = models.get(record.modelName);
  if (!model) return null;
  const interpretation = interpretationOf(model.manifest, record.outputs[0]?.name);
  return { interpretation, outcome: outcomeOf(record.outputs, interpretation) };
}
