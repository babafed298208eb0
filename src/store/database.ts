import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import { PrismaClient as PostgresPrismaClient } from '../generated/prisma-pg/client.ts';
import type { BatchJobWriter } from './batch-job-writer.ts';
import { migrateSqlite } from './migrate.ts';
import { migratePostgres } from './migrate-postgres.ts';
import { createPostgresBatchJobWriter } from './postgres-batch-job-writer.ts';
import { createPostgresHistoryWriter } from './postgres-history-writer.ts';
import { openPostgresPool } from './postgres-pool.ts';
import type { HistoryWriter } from './history-writer.ts';
import { createSqliteBatchJobWriter } from './sqlite-batch-job-writer.ts';
import { openSqliteHistoryWriter, openSqliteWriteConnection } from './sqlite-history-writer.ts';
import { createPostgresShadowWriter, createSqliteShadowWriter, type ShadowWriter } from './shadow-writer.ts';

/**
 * The history's reads: a Prisma client typed as the SQLite one on either database. The
 * PostgreSQL client is generated from the same models (prisma/postgres/schema.prisma), so
 * its rows have the same types; only its query options are a superset.
 */
export type Database = PrismaClient;

const SQLITE_MIGRATIONS = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
const POSTGRES_MIGRATIONS = fileURLToPath(new URL('../../prisma/postgres/migrations', import.meta.url));

export interface OpenDatabaseOptions {
  /** Called with each SQL statement Prisma sends, and each history INSERT (tests count them). */
  onQuery?: (sql: string) => void;
  /** SQLite `synchronous` on the writing connections (see sqlite-history-writer.ts). @default 'FULL' */
  sqliteSynchronous?: 'FULL' | 'NORMAL';
  /** History rows are inserted with the outbox flag set: their events cross processes (src/pubsub/outbox.ts). @default false */
  eventPending?: boolean;
}

/** A `postgresql://` or `postgres://` DATABASE_URL; anything else is a SQLite `file:` URL. */
export const isPostgresUrl = (databaseUrl: string): boolean => /^postgres(ql)?:\/\//.test(databaseUrl);

/** The SQLite file a `file:` DATABASE_URL names, relative paths against the working directory. */
export function sqliteFile(databaseUrl: string): string {
  return resolve(databaseUrl.replace(/^file:/, '').replace(/\?.*$/, ''));
}

function withQueryLog(client: Database, onQuery: ((sql: string) => void) | undefined): Database {
  if (onQuery) (client as PrismaClient<'query'>).$on('query', (event) => onQuery(event.query));
  return client;
}

const log = (options: OpenDatabaseOptions) => (options.onQuery ? [{ emit: 'event' as const, level: 'query' as const }] : []);

function sqliteClient(file: string, options: OpenDatabaseOptions): Database {
  const adapter = new PrismaBetterSqlite3({ url: `file:${file}`, timeout: 10_000 });
  return withQueryLog(new PrismaClient({ adapter, log: log(options) }), options.onQuery);
}

function postgresClient(poolOrUrl: pg.Pool | string, options: OpenDatabaseOptions): Database {
  const client = new PostgresPrismaClient({ adapter: new PrismaPg(poolOrUrl), log: log(options) });
  // Row types are the same; the clients' option types differ (PostgreSQL adds `mode`, isolation levels).
  return withQueryLog(client as unknown as Database, options.onQuery);
}

/**
 * Applies the committed migrations of the database `databaseUrl` names (creating a SQLite
 * file's folder) and returns a Prisma client on it: the history's reads. `$disconnect()`
 * releases its connections. The server opens a whole `Store` instead.
 */
export async function openDatabase(databaseUrl: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  let client: Database;
  if (isPostgresUrl(databaseUrl)) {
    await migratePostgres(databaseUrl, POSTGRES_MIGRATIONS);
    client = postgresClient(databaseUrl, options);
  } else {
    const file = sqliteFile(databaseUrl);
    mkdirSync(dirname(file), { recursive: true });
    migrateSqlite(file, SQLITE_MIGRATIONS);
    client = sqliteClient(file, options);
  }
  await client.$connect();
  return client;
}

/** The history and batch jobs on one database: Prisma for reads, writers in the database's own SQL. */
export interface Store {
  db: Database;
  history: HistoryWriter;
  batchJobs: BatchJobWriter;
  /** Shadow traffic's results (store/shadow-writer.ts). */
  shadowResults: ShadowWriter;
  /** Releases every connection (after the writers' last commit). */
  close(): Promise<void>;
}

/**
 * Opens the database `databaseUrl` names, migrated. SQLite: Prisma reads on the
 * better-sqlite3 adapter, each writer on a connection of its own with `sqliteSynchronous`.
 * PostgreSQL: one pg.Pool for Prisma's reads and both writers.
 */
export async function openStore(databaseUrl: string, options: OpenDatabaseOptions = {}): Promise<Store> {
  if (isPostgresUrl(databaseUrl)) {
    await migratePostgres(databaseUrl, POSTGRES_MIGRATIONS);
    const pool = openPostgresPool(databaseUrl);
    const db = postgresClient(pool, options);
    await db.$connect().catch(async (error: unknown) => {
      await pool.end();
      throw error;
    });
    return {
      db,
      history: createPostgresHistoryWriter(pool, { onQuery: options.onQuery, eventPending: options.eventPending }),
      batchJobs: createPostgresBatchJobWriter(pool, { onQuery: options.onQuery }),
      shadowResults: createPostgresShadowWriter(pool, { onQuery: options.onQuery }),
      async close() {
        await db.$disconnect(); // leaves the pool it was given open
        await pool.end();
      },
    };
  }
  const db = await openDatabase(databaseUrl, options);
  const file = sqliteFile(databaseUrl);
  const history = openSqliteHistoryWriter(file, { synchronous: options.sqliteSynchronous, onQuery: options.onQuery, eventPending: options.eventPending });
  const batchConnection = openSqliteWriteConnection(file, { synchronous: options.sqliteSynchronous });
  const shadowConnection = openSqliteWriteConnection(file, { synchronous: 'NORMAL' });
  return {
    db,
    history,
    batchJobs: createSqliteBatchJobWriter(batchConnection, { onQuery: options.onQuery }),
    shadowResults: createSqliteShadowWriter(shadowConnection, { onQuery: options.onQuery }),
    async close() {
      history.close();
      batchConnection.close();
      shadowConnection.close();
      await db.$disconnect();
    },
  };
}
