import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.ts';
import { MigrationError, migrateSqlite } from '../src/store/migrate.ts';
import { migratePostgres } from '../src/store/migrate-postgres.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './helpers/test-database.ts';
import { expectEveryColumnToRoundTrip, ROUND_TRIP } from './helpers/round-trip.ts';

const MIGRATIONS = 'prisma/postgres/migrations';
const NAMES = ['20261126000000_init', '20261126100000_generation', '20261202000000_interpretation', '20261202120000_batch_jobs', '20261202130000_cached', '20261202150000_outbox', '20261202160000_api_keys', '20261202180000_feedback', '20261203090000_shadow_results'];
const temp = () => mkdtempSync(join(tmpdir(), 'migrate-pg-'));

let databases: TestDatabase[] = [];
const fresh = async () => {
  const database = await createTestDatabase();
  databases.push(database);
  return database;
};
afterEach(async () => {
  for (const database of databases) await database.drop();
  databases = [];
});

const tablesOf = async (database: TestDatabase) =>
  (await database.query<{ name: string }>(`SELECT table_name AS "name" FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).map((r) => r.name);

describe.runIf(onPostgres)('PostgreSQL migrations', () => {
  it('apply once, are recorded the way Prisma records them, and are idempotent', async () => {
    const database = await fresh();
    expect(await migratePostgres(database.url, MIGRATIONS)).toEqual(NAMES.map((name) => ({ name, applied: true })));
    expect(await migratePostgres(database.url, MIGRATIONS)).toEqual(NAMES.map((name) => ({ name, applied: false })));
    const rows = await database.query(`SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`);
    expect(rows).toEqual(
      NAMES.map((name) => ({
        migration_name: name,
        checksum: createHash('sha256').update(readFileSync(`${MIGRATIONS}/${name}/migration.sql`)).digest('hex'),
        finished_at: expect.any(String),
        applied_steps_count: 1,
      })),
    );
  });

  it('run once when replicas start together: each migrator succeeds, the migrations apply once', async () => {
    const database = await fresh();
    const results = await Promise.all(Array.from({ length: 4 }, () => migratePostgres(database.url, MIGRATIONS)));
    const appliers = results.filter((result) => result.some((m) => m.applied));
    expect(appliers).toEqual([NAMES.map((name) => ({ name, applied: true }))]);
    expect(await database.value(`SELECT COUNT(*) FROM "_prisma_migrations"`)).toBe(NAMES.length);
  });

  it('refuse to start when an applied migration was edited, before applying anything', async () => {
    const database = await fresh();
    const dir = join(temp(), 'migrations');
    cpSync(MIGRATIONS, dir, { recursive: true });
    await migratePostgres(database.url, dir);
    writeFileSync(join(dir, '20261126000000_init', 'migration.sql'), '-- edited\n');
    cpSync(join(dir, '20261126100000_generation'), join(dir, '20261203000000_later'), { recursive: true });
    writeFileSync(join(dir, '20261203000000_later', 'migration.sql'), 'CREATE TABLE "Later" ("id" TEXT);');
    await expect(migratePostgres(database.url, dir)).rejects.toThrow(MigrationError);
    await expect(migratePostgres(database.url, dir)).rejects.toThrow('Migration `20261126000000_init` was modified after it was applied');
    expect(await tablesOf(database)).not.toContain('Later');
  });

  it('roll a failing migration back whole and do not record it; the ones before it stay applied', async () => {
    const database = await fresh();
    const dir = join(temp(), 'migrations');
    cpSync(MIGRATIONS, dir, { recursive: true });
    cpSync(join(dir, '20261126000000_init'), join(dir, '20261127000000_broken'), { recursive: true });
    writeFileSync(join(dir, '20261127000000_broken', 'migration.sql'), 'CREATE TABLE "Extra" (id TEXT);\nTHIS IS NOT SQL;');
    await expect(migratePostgres(database.url, dir)).rejects.toThrow(/Migration `20261127000000_broken` failed: syntax error/);
    expect(await tablesOf(database)).toEqual(['Prediction', '_prisma_migrations']); // no "Extra", no batch tables after it
    expect((await database.query(`SELECT migration_name FROM "_prisma_migrations" ORDER BY 1`)).map((r) => r.migration_name)).toEqual(NAMES.slice(0, 2));
  });

  it('create what the SQLite migrations create: the same columns, nullability, defaults, keys and indexes', async () => {
    const database = await fresh();
    await migratePostgres(database.url, MIGRATIONS);
    const file = join(temp(), 'db.sqlite');
    migrateSqlite(file, 'prisma/migrations');
    const sqlite = new Database(file, { readonly: true });
    const sqliteType = (type: string) => ({ TEXT: 'text', INTEGER: 'integer', REAL: 'double precision', DATETIME: 'timestamp(3)', JSONB: 'jsonb', BOOLEAN: 'boolean' })[type] ?? type;
    for (const table of ['Prediction', 'BatchJob', 'BatchRow', 'Feedback', 'ShadowResult']) {
      const expected = (sqlite.pragma(`table_info("${table}")`) as Array<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>).map((c) => ({
        name: c.name,
        type: sqliteType(c.type),
        nullable: c.notnull === 0 && c.pk === 0,
        default: c.dflt_value,
      }));
      const actual = (
        await database.query(
          `SELECT column_name AS "name", format_type(a.atttypid, a.atttypmod) AS "type", is_nullable = 'YES' AS "nullable", column_default AS "default"
           FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = format('%I', c.table_name)::regclass AND a.attname = c.column_name
           WHERE c.table_schema = 'public' AND c.table_name = $1 ORDER BY c.ordinal_position`,
          [table],
        )
      ).map((c) => ({ ...c, type: (c.type as string).replace('timestamp(3) without time zone', 'timestamp(3)') }));
      expect(actual, table).toEqual(expected);
    }
    const sqliteIndexes = (sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name`).all() as Array<{ name: string }>).map((r) => r.name);
    sqlite.close();
    const pgIndexes = (await database.query(`SELECT indexname AS "name" FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY 1`)).map((r) => r.name);
    expect(pgIndexes).toEqual(sqliteIndexes);
    expect(await database.query(`SELECT conname AS "name", confdeltype AS "onDelete" FROM pg_constraint WHERE contype = 'f' ORDER BY 1`)).toEqual([
      { name: 'BatchRow_jobId_fkey', onDelete: 'c' },
      { name: 'ShadowResult_predictionId_fkey', onDelete: 'c' },
    ]);
  });

  it('match the Prisma schema: every column round-trips through the generated PostgreSQL client', async () => {
    const database = await fresh();
    const db = await openDatabase(database.url);
    try {
      await expectEveryColumnToRoundTrip(db);
      const { job } = ROUND_TRIP;
      // JSONB, not text: PostgreSQL reads into it.
      expect(await database.value(`SELECT "interpretation"->>'kind' FROM "BatchJob"`)).toBe('CLASSIFIER');
      // The unique key and the cascade, through the client.
      await expect(db.batchJob.create({ data: { ...job, id: '0190b6c2-0000-7000-8000-000000000003' } })).rejects.toThrow(/Unique constraint/);
      await db.batchJob.delete({ where: { id: job.id } });
      expect(await db.batchRow.count()).toBe(0);
    } finally {
      await db.$disconnect();
    }
  });
});
