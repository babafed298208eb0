import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { isPostgresUrl, sqliteFile } from '../../src/store/database.ts';

/**
 * The database the integration tests run on. vitest.config.ts runs the database tests
 * once per project: `sqlite`, and `postgres` (TEST_DATABASE=postgres) when PostgreSQL answers.
 */
export const onPostgres = process.env.TEST_DATABASE === 'postgres';

/** A database server for tests to create databases on; vitest.config.ts sets it. */
const postgresAdminUrl = () => process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
/** Names of this run's databases start with it: the postgres project's teardown drops what is left. */
const prefix = () => process.env.TEST_DATABASE_PREFIX ?? 'gw_test';

export interface TestDatabase {
  /** DATABASE_URL of this database. */
  url: string;
  /**
   * SQL on a connection of the test's own, parameters as `$1`, `$2`… on both databases.
   * Results look alike on both: numbers (COUNT(*) included) as numbers, JSON and times as
   * text. Quote identifiers and aliases ("BatchRow"."jobId" AS "n"): PostgreSQL folds unquoted ones.
   */
  query<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** The first column of the first row, e.g. of `SELECT COUNT(*) …`. */
  value<T = number>(sql: string, params?: unknown[]): Promise<T>;
  /** Closes the test's connections; PostgreSQL: drops the database (DROP … WITH (FORCE)). */
  drop(): Promise<void>;
}

// Type oids: int8, numeric; json, jsonb, timestamp, timestamptz.
const NUMBERS = new Set([20, 1700]);
const AS_TEXT = new Set([114, 3802, 1114, 1184]);
/** What better-sqlite3 returns: numbers as numbers, JSON and times as their text. */
const getTypeParser = ((oid: number, format: 'text' | 'binary' = 'text') => {
  if (format === 'text' && NUMBERS.has(oid)) return Number;
  if (format === 'text' && AS_TEXT.has(oid)) return (text: string) => text;
  return pg.types.getTypeParser(oid, format);
}) as pg.CustomTypesConfig['getTypeParser'];

/** Test access to the database at `url` (created elsewhere, e.g. by `createTestDatabase`). */
export function testDatabaseAt(url: string): TestDatabase {
  let query: TestDatabase['query'];
  let close: () => Promise<void>;
  if (isPostgresUrl(url)) {
    const pool = new pg.Pool({
      connectionString: url,
      max: 2,
      allowExitOnIdle: true,
      types: { getTypeParser },
    });
    // An idle connection ended by the server (a database dropped WITH (FORCE) by a test's cleanup) is not an error of the test; queries still reject.
    pool.on('error', () => undefined);
    query = async (sql, params) => (await pool.query(sql, params)).rows;
    close = () => pool.end();
  } else {
    const file = sqliteFile(url);
    query = async (sql, params = []) => {
      const db = new Database(file);
      try {
        // `$n` as SQLite's `?`, the values in the order they appear.
        const values: unknown[] = [];
        const statement = db.prepare(sql.replace(/\$(\d+)/g, (_, n: string) => (values.push(params[Number(n) - 1]), '?')));
        if (statement.reader) return statement.all(...values) as any[];
        statement.run(...values);
        return [];
      } finally {
        db.close();
      }
    };
    close = async () => {};
  }
  return {
    url,
    query,
    async value(sql, params) {
      const row = (await query(sql, params))[0];
      return row ? Object.values(row)[0] : undefined;
    },
    async drop() {
      await close();
      if (isPostgresUrl(url)) await dropPostgresDatabase(new URL(url).pathname.slice(1));
    },
  };
}

async function withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: postgresAdminUrl() });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

async function dropPostgresDatabase(name: string): Promise<void> {
  await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}

/** A fresh, empty database of the kind this project tests: a new PostgreSQL database, or a SQLite file in a temp folder. */
export async function createTestDatabase(): Promise<TestDatabase> {
  if (!onPostgres) return testDatabaseAt(`file:${join(mkdtempSync(join(tmpdir(), 'gateway-db-')), 'history.db')}`);
  const name = `${prefix()}_${randomBytes(6).toString('hex')}`;
  await withAdmin((admin) => admin.query(`CREATE DATABASE "${name}"`));
  const url = new URL(postgresAdminUrl());
  url.pathname = `/${name}`;
  return testDatabaseAt(url.toString());
}

/** Drops every database whose name starts with `namePrefix` (the postgres project's teardown). */
export async function dropTestDatabases(namePrefix: string): Promise<string[]> {
  return withAdmin(async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, [`${namePrefix}_`]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    return rows.map((r) => r.datname);
  });
}
