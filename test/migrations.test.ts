import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../src/store/database.ts';
import { MigrationError, migrateSqlite } from '../src/store/migrate.ts';
import { onPostgres } from './helpers/test-database.ts';
import { expectEveryColumnToRoundTrip } from './helpers/round-trip.ts';

const temp = () => mkdtempSync(join(tmpdir(), 'migrate-'));

// SQLite's own migrator on SQLite files; PostgreSQL's is in migrations-postgres.test.ts.
describe.skipIf(onPostgres)('SQLite migrations', () => {
  it('apply once, are recorded the way Prisma records them, and are idempotent', () => {
    const file = join(temp(), 'db.sqlite');
    const names = ['20261126000000_init', '20261126100000_generation', '20261202000000_interpretation', '20261202120000_batch_jobs', '20261202130000_cached', '20261202150000_outbox', '20261202160000_api_keys', '20261202180000_feedback', '20261203090000_shadow_results'];
    expect(migrateSqlite(file, 'prisma/migrations')).toEqual(names.map((name) => ({ name, applied: true })));
    expect(migrateSqlite(file, 'prisma/migrations')).toEqual(names.map((name) => ({ name, applied: false })));
    const db = new Database(file, { readonly: true });
    const rows = db.prepare('SELECT migration_name, checksum, finished_at FROM _prisma_migrations').all() as any[];
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    expect(rows).toEqual(
      names.map((name) => ({
        migration_name: name,
        checksum: createHash('sha256').update(readFileSync(`prisma/migrations/${name}/migration.sql`)).digest('hex'),
        finished_at: expect.any(String),
      })),
    );
  });

  it('refuse to start when an applied migration was edited', () => {
    const dir = temp();
    cpSync('prisma/migrations', join(dir, 'migrations'), { recursive: true });
    const file = join(dir, 'db.sqlite');
    migrateSqlite(file, join(dir, 'migrations'));
    writeFileSync(join(dir, 'migrations', '20261126000000_init', 'migration.sql'), '-- edited\n');
    expect(() => migrateSqlite(file, join(dir, 'migrations'))).toThrow(MigrationError);
    expect(() => migrateSqlite(file, join(dir, 'migrations'))).toThrow('Migration `20261126000000_init` was modified after it was applied');
  });

  it('leave nothing behind when a migration fails', () => {
    const dir = temp();
    cpSync('prisma/migrations', join(dir, 'migrations'), { recursive: true });
    cpSync(join(dir, 'migrations', '20261126000000_init'), join(dir, 'migrations', '20261127000000_broken'), { recursive: true });
    writeFileSync(join(dir, 'migrations', '20261127000000_broken', 'migration.sql'), 'CREATE TABLE "Extra" (id TEXT);\nTHIS IS NOT SQL;');
    const file = join(dir, 'db.sqlite');
    expect(() => migrateSqlite(file, join(dir, 'migrations'))).toThrow();
    const db = new Database(file, { readonly: true });
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all().map((r: any) => r.name);
    db.close();
    expect(tables).toEqual(['_prisma_migrations']); // init rolled back too: one transaction
  });

  it('match the Prisma schema: every column round-trips through the generated client', async () => {
    const db = await openDatabase(`file:${join(temp(), 'db.sqlite')}`);
    await expectEveryColumnToRoundTrip(db);
    await db.$disconnect();
  });
});
