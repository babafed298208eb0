import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { NewShadowResult } from '../serving/shadow.ts';
import { inTransaction, MAX_PARAMETERS, slices, timestampOf } from './postgres-pool.ts';
import { multiRowInsertSql } from './multi-row-insert.ts';

/**
 * Writes ShadowResult rows; each call is one transaction. In each database's own SQL, around
 * Prisma, like the history writers: through Prisma, storing one row cost about as much CPU as
 * the whole prediction it shadows (2.3 ms against 2.2 ms in-process), all of it on the event loop
 * the callers share; a prepared multi-row INSERT costs a few tens of µs.
 */
export interface ShadowWriter {
  insert(rows: readonly NewShadowResult[]): Promise<void>;
}

const COLUMNS = [
  'predictionId',
  'modelName',
  'version',
  'shadowVersion',
  'predictedAt',
  'createdAt',
  'outputs',
  'label',
  'error',
  'latencyMs',
  'primaryLatencyMs',
  'meanAbsoluteDifference',
  'labelsAgree',
  'apiKeyId',
] as const;

/** Values in COLUMNS order; `time` and `bool` encode as each database stores them. */
const valuesOf = (r: NewShadowResult, time: (date: Date) => string, bool: (value: boolean) => unknown): unknown[] => [
  r.predictionId,
  r.modelName,
  r.version,
  r.shadowVersion,
  time(r.predictedAt),
  time(r.createdAt),
  r.outputs === null ? null : JSON.stringify(r.outputs),
  r.label,
  r.error,
  r.latencyMs,
  r.primaryLatencyMs,
  r.meanAbsoluteDifference,
  r.labelsAgree === null ? null : bool(r.labelsAgree),
  r.apiKeyId,
];

const insertSql = (rows: number, placeholder: (n: number) => string) => multiRowInsertSql('ShadowResult', COLUMNS, rows, placeholder);

/** SQLite allows 32,766 bound parameters per statement; stay far below. */
const SQLITE_ROWS_PER_INSERT = 500;

/**
 * On a better-sqlite3 connection of its own (`synchronous = NORMAL` is enough: no caller waits
 * for these rows; the next history commit syncs the WAL anyway). Times and JSON are encoded the
 * way Prisma's SQLite adapter stores them, so Prisma reads the rows back.
 */
export function createSqliteShadowWriter(db: Database.Database, options: { onQuery?: (sql: string) => void } = {}): ShadowWriter {
  const statements = new Map<number, Database.Statement>();
  const statementFor = (rows: number) => {
    let statement = statements.get(rows);
    if (!statement) {
      statement = db.prepare(insertSql(rows, () => '?'));
      statements.set(rows, statement);
    }
    return statement;
  };
  const time = (date: Date) => date.toISOString().replace('Z', '+00:00');
  const insertAll = db.transaction((rows: readonly NewShadowResult[]) => {
    for (const slice of slices(rows, SQLITE_ROWS_PER_INSERT)) {
      const statement = statementFor(slice.length);
      options.onQuery?.(statement.source);
      statement.run(slice.flatMap((r) => valuesOf(r, time, (b) => (b ? 1 : 0))));
    }
  });
  return {
    async insert(rows) {
      insertAll.immediate(rows);
    },
  };
}

const POSTGRES_ROWS_PER_INSERT = Math.floor(MAX_PARAMETERS / COLUMNS.length);

/** On the store's pool: one statement per call unless the rows exceed one statement's parameters. */
export function createPostgresShadowWriter(pool: pg.Pool, options: { onQuery?: (sql: string) => void } = {}): ShadowWriter {
  const statements = new Map<number, string>();
  const insert = async (client: pg.ClientBase | pg.Pool, rows: readonly NewShadowResult[]) => {
    for (const slice of slices(rows, POSTGRES_ROWS_PER_INSERT)) {
      let text = statements.get(slice.length);
      if (!text) {
        text = insertSql(slice.length, (index) => `$${index}`);
        statements.set(slice.length, text);
      }
      options.onQuery?.(text);
      await client.query(text, slice.flatMap((r) => valuesOf(r, timestampOf, (b) => b)));
    }
  };
  return {
    async insert(rows) {
      if (rows.length <= POSTGRES_ROWS_PER_INSERT) await insert(pool, rows);
      else await inTransaction(pool, (client) => insert(client, rows));
    },
  };
}
