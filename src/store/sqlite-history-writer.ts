import Database from 'better-sqlite3';
import type { PredictionRecord } from '../serving/records.ts';
import type { HistoryWriter } from './history-writer.ts';
import { encodeAsBytes } from './tensor-codec.ts';
import { multiRowInsertSql } from './multi-row-insert.ts';

export interface SqliteHistoryWriterOptions {
  /**
   * SQLite `synchronous` on this connection. FULL syncs the WAL on every commit, so an
   * acknowledged prediction survives a power loss or OS crash; NORMAL only a process crash.
   * @default 'FULL'
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** Called with each statement run (tests count them). */
  onQuery?: (sql: string) => void;
  /** How long a write waits for a lock held by another connection, in ms. @default 10000 */
  busyTimeoutMs?: number;
  /** Insert rows with the outbox flag set (src/pubsub/outbox.ts): their events cross processes. @default false */
  eventPending?: boolean;
}

const COLUMNS = ['id', 'modelName', 'version', 'createdAt', 'latencyMs', 'inputs', 'outputs', 'generation', 'interpretation', 'cached', 'eventPending', 'apiKeyId'] as const;
/** SQLite allows 32,766 bound parameters per statement; stay far below. */
const ROWS_PER_INSERT = 500;

/** Values in COLUMNS order, encoded the way Prisma's SQLite adapter stores them (ISO time with +00:00, JSON as text); outputs as bytes (tensor-codec.ts). */
const toValues = (r: PredictionRecord, eventPending: boolean): unknown[] => [
  r.id,
  r.modelName,
  r.version,
  r.createdAt.toISOString().replace('Z', '+00:00'),
  r.latencyMs,
  JSON.stringify(r.inputs),
  JSON.stringify(encodeAsBytes(r.outputs)),
  r.generation ? JSON.stringify(r.generation) : null,
  r.interpretation ? JSON.stringify(r.interpretation) : null,
  r.cached ? 1 : 0,
  eventPending ? 1 : 0,
  r.apiKeyId ?? null,
];

/**
 * Multi-row INSERTs of history rows on `db`, run synchronously in the caller's transaction
 * (or as one statement's own transaction when the rows fit in one statement). Shared by
 * the history writer and the SQLite batch-job writer, whose chunk commits add rows of their own.
 */
export function predictionInserter(db: Database.Database, onQuery?: (sql: string) => void, eventPending = false): (records: readonly PredictionRecord[]) => void {
  const statements = new Map<number, Database.Statement>();
  const statementFor = (rows: number) => {
    let statement = statements.get(rows);
    if (!statement) {
      statement = db.prepare(multiRowInsertSql('Prediction', COLUMNS, rows, () => '?'));
      statements.set(rows, statement);
    }
    return statement;
  };
  return (records) => {
    for (let start = 0; start < records.length; start += ROWS_PER_INSERT) {
      const chunk = records.slice(start, start + ROWS_PER_INSERT);
      const statement = statementFor(chunk.length);
      onQuery?.(statement.source);
      statement.run(chunk.flatMap((r) => toValues(r, eventPending)));
    }
  };
}

/** A better-sqlite3 connection for writes, with the durability the config asks for. */
export function openSqliteWriteConnection(file: string, options: SqliteHistoryWriterOptions = {}): Database.Database {
  const db = new Database(file, { timeout: options.busyTimeoutMs ?? 10_000 });
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  return db;
}

/**
 * The history's write path: multi-row INSERTs on a better-sqlite3 connection of its own
 * (Prisma's client keeps the reads). Going around Prisma matters for big rows: its raw
 * query path cost about 18 MB of allocations for a 1.3 MB tensor, our own JSON string
 * plus SQLite's copy of it cost one. A test reads rows written here back through Prisma.
 */
export function openSqliteHistoryWriter(file: string, options: SqliteHistoryWriterOptions = {}): HistoryWriter & { close(): void } {
  const db = openSqliteWriteConnection(file, options);
  const insert = predictionInserter(db, options.onQuery, options.eventPending);
  // One transaction for any number of rows: all commit together or none do.
  const insertAll = db.transaction((records: readonly PredictionRecord[]) => insert(records));
  const markPublished = db.prepare(`UPDATE "Prediction" SET "eventPending" = 0 WHERE "id" IN (SELECT value FROM json_each(?))`);
  return {
    async insert(records) {
      // One statement is one transaction in SQLite; more rows than one statement holds need BEGIN/COMMIT.
      if (records.length <= ROWS_PER_INSERT) insert(records);
      else insertAll.immediate(records);
    },
    async markPublished(ids) {
      markPublished.run(JSON.stringify(ids));
    },
    setting: async (name) => db.pragma(name, { simple: true }),
    close: () => db.close(),
  };
}
