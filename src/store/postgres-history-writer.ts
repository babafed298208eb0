import type pg from 'pg';
import type { PredictionRecord } from '../serving/records.ts';
import type { HistoryWriter } from './history-writer.ts';
import { inTransaction, MAX_PARAMETERS, slices, timestampOf } from './postgres-pool.ts';
import { encodeAsBytes } from './tensor-codec.ts';
import { multiRowInsertSql } from './multi-row-insert.ts';

const COLUMNS = ['id', 'modelName', 'version', 'createdAt', 'latencyMs', 'inputs', 'outputs', 'generation', 'interpretation', 'cached', 'eventPending', 'apiKeyId'] as const;
const ROWS_PER_INSERT = Math.floor(MAX_PARAMETERS / COLUMNS.length);

/** Values in COLUMNS order: time as UTC `timestamp(3)` text (postgres-pool.ts), JSON as text for jsonb; outputs as bytes (tensor-codec.ts). */
const toValues = (r: PredictionRecord, eventPending: boolean): unknown[] => [
  r.id,
  r.modelName,
  r.version,
  timestampOf(r.createdAt),
  r.latencyMs,
  JSON.stringify(r.inputs),
  JSON.stringify(encodeAsBytes(r.outputs)),
  r.generation ? JSON.stringify(r.generation) : null,
  r.interpretation ? JSON.stringify(r.interpretation) : null,
  r.cached === true,
  eventPending,
  r.apiKeyId ?? null,
];

const statements = new Map<number, string>();
const insertSql = (rows: number) => {
  let text = statements.get(rows);
  if (!text) {
    text = multiRowInsertSql('Prediction', COLUMNS, rows, (n) => `$${n}`);
    statements.set(rows, text);
  }
  return text;
};

/**
 * Multi-row INSERTs of history rows on `client`, in the caller's transaction when it has
 * one. Shared by the history writer and the batch-job writer, whose chunk commits add rows
 * of their own.
 */
export function postgresPredictionInserter(onQuery?: (sql: string) => void, eventPending = false): (client: pg.ClientBase | pg.Pool, records: readonly PredictionRecord[]) => Promise<void> {
  return async (client, records) => {
    for (const slice of slices(records, ROWS_PER_INSERT)) {
      const text = insertSql(slice.length);
      onQuery?.(text);
      await client.query(text, slice.flatMap((r) => toValues(r, eventPending)));
    }
  };
}

/**
 * The history's write path on PostgreSQL: multi-row INSERTs on `pool` (Prisma keeps the
 * reads), one statement per group commit unless the group exceeds a statement's
 * parameters, then one transaction of several. A commit returns once PostgreSQL has
 * flushed it to its WAL with the server's default `synchronous_commit = on`; the server's
 * settings, not this code, decide that.
 */
export function createPostgresHistoryWriter(pool: pg.Pool, options: { onQuery?: (sql: string) => void; eventPending?: boolean } = {}): HistoryWriter {
  const insert = postgresPredictionInserter(options.onQuery, options.eventPending);
  return {
    async insert(records) {
      // One statement is its own transaction; more rows than one statement binds need BEGIN/COMMIT.
      if (records.length <= ROWS_PER_INSERT) await insert(pool, records);
      else await inTransaction(pool, (client) => insert(client, records));
    },
    async markPublished(ids) {
      await pool.query(`UPDATE "Prediction" SET "eventPending" = false WHERE "id" = ANY($1::text[])`, [ids]);
    },
    async setting(name) {
      return (await pool.query<Record<string, string>>(`SHOW ${name.replace(/[^a-z_]/gi, '')}`)).rows[0]?.[name];
    },
  };
}
