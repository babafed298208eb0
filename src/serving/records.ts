import type { Interpretation, Outcome } from '../inference/interpretation.ts';
import type { TensorData } from '../inference/types.ts';

/** The domain records of the serving layer: what a prediction is, whatever stores it or carries it. */

export type FinishReason = 'LENGTH' | 'STOP' | 'CANCELLED';

/** What a generator's prediction adds to its token tensors. */
export interface GenerationRecord {
  prompt: string;
  text: string;
  finishReason: FinishReason;
  tokens: number;
  /** The decoding settings, seed included, so the text can be reproduced. */
  parameters: { maxTokens: number; temperature: number; topK: number | null; seed: number; stop: string[] };
}

/** One stored prediction. */
export interface PredictionRecord {
  /** UUIDv7: time-sortable. */
  id: string;
  modelName: string;
  version: number;
  createdAt: Date;
  latencyMs: number;
  inputs: TensorData[];
  outputs: TensorData[];
  generation?: GenerationRecord | null;
  /** What the outputs meant when the prediction was made (kind, main output, labels). */
  interpretation?: Interpretation | null;
  /** label, scores and value, decided once from `interpretation` (absent on rows stored without one). */
  outcome?: Outcome | null;
  /** The outputs came from the response cache (no ONNX run). */
  cached?: boolean;
  /** The API key that made it (a batch job's rows: the job's key); null or absent when auth is off. */
  apiKeyId?: string | null;
}
