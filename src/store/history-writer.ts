import type { PredictionRecord } from '../serving/records.ts';

/** Writes history rows; each call is one transaction (sqlite-history-writer.ts, postgres-history-writer.ts). */
export interface HistoryWriter {
  insert(records: readonly PredictionRecord[]): Promise<void>;
  /** Clears the outbox flag of these rows: their events are out (src/pubsub/outbox.ts). */
  markPublished(ids: readonly string[]): Promise<void>;
  /**
   * A setting of the writing connection that decides durability, for diagnostics and tests:
   * SQLite's `PRAGMA name` (`synchronous` 2 = FULL), PostgreSQL's `SHOW name` (`synchronous_commit`).
   */
  setting(name: string): Promise<unknown>;
}
