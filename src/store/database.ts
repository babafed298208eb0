import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaClient } from '../generated/prisma/client.ts';
import { migrateSqlite } from './migrate.ts';

export type Database = PrismaClient;

const MIGRATIONS = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

export interface OpenDatabaseOptions {
  /** Called with each SQL statement Prisma sends (tests count them). */
  onQuery?: (sql: string) => void;
}

/** The SQLite file a `file:` DATABASE_URL names, relative paths against the working directory. */
export function sqliteFile(databaseUrl: string): string {
  return resolve(databaseUrl.replace(/^file:/, '').replace(/\?.*$/, ''));
}

/**
 * Creates the database file's folder, applies the committed migrations and returns
 * a Prisma client on the better-sqlite3 driver adapter: the history's reads. Its writes go
 * through `openSqliteHistoryWriter` on a connection of their own.
 */
export async function openDatabase(databaseUrl: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  const file = sqliteFile(databaseUrl);
  mkdirSync(dirname(file), { recursive: true });
  migrateSqlite(file, MIGRATIONS);
  const adapter = new PrismaBetterSqlite3({ url: `file:${file}`, timeout: 10_000 });
  const client = new PrismaClient({ adapter, log: options.onQuery ? [{ emit: 'event', level: 'query' }] : [] });
  if (options.onQuery) {
    const onQuery = options.onQuery;
    (client as PrismaClient<'query'>).$on('query', (event) => onQuery(event.query));
  }
  await client.$connect();
  return client;
}
