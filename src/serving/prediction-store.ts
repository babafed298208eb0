import type { TensorData } from '../inference/types.ts';
import type { PredictionRecord } from './records.ts';

export interface PredictionFilter {
  model?: string | null;
  version?: number | null;
  since?: Date | null;
  until?: Date | null;
  /** Only this API key's predictions (a key without the admin scope sees only its own). */
  apiKeyId?: string;
}

export interface PredictionPage {
  records: PredictionRecord[];
  hasNextPage: boolean;
}

/**
 * Where the history lives. The serving layer needs only this; `store/` implements it
 * (SQLite today), so another database plugs in without the layers above knowing.
 */
export interface PredictionStore {
  /** Resolves once the row is committed (durable as the store promises). */
  insert(record: PredictionRecord): Promise<void>;
  /** Resolves once every row handed to `insert` so far is committed. */
  drain(): Promise<void>;
  /** One query for all ids; aligned with `ids`, undefined where there is none (or, with `apiKeyId`, where another key made it). */
  findByIds(ids: readonly string[], apiKeyId?: string): Promise<Array<PredictionRecord | undefined>>;
  /** Newest first; `afterId` continues below that id. */
  page(filter: PredictionFilter, first: number, afterId?: string): Promise<PredictionPage>;
  /** The input tensors of the newest `limit` predictions of a model version (every caller's), newest first; one query (drift monitoring). */
  recentInputs(model: string, version: number, limit: number): Promise<TensorData[][]>;
}
