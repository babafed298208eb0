import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export interface AppliedMigration {
  name: string;
  applied: boolean;
}

/** An applied migration whose file changed afterwards, or one that failed half-way before. */
export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** A committed migration: `<dir>/<name>/migration.sql`, its checksum as Prisma computes it (SHA-256 of the file). */
export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

/** The migrations in `migrationsDir`, in name (= time) order. */
export function readMigrations(migrationsDir: string): MigrationFile[] {
  if (!existsSync(migrationsDir)) return [];
  return readdirSync(migrationsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(migrationsDir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(migrationsDir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/** A row of `_prisma_migrations`, as far as deciding goes. */
export interface MigrationRecord {
  migration_name: string;
  checksum: string;
  finished_at: unknown;
  rolled_back_at: unknown;
}

/**
 * Which migrations still need applying; throws MigrationError when one already applied was
 * edited afterwards or failed half-way (rows rolled back by hand do not count).
 */
export function pendingMigrations(migrations: readonly MigrationFile[], records: readonly MigrationRecord[]): MigrationFile[] {
  const applied = new Map(records.filter((r) => r.rolled_back_at === null).map((r) => [r.migration_name, r]));
  return migrations.filter(({ name, checksum }) => {
    const previous = applied.get(name);
    if (!previous) return true;
    if (previous.finished_at === null) throw new MigrationError(`Migration \`${name}\` failed earlier and must be resolved by hand`);
    if (previous.checksum !== checksum) throw new MigrationError(`Migration \`${name}\` was modified after it was applied`);
    return false;
  });
}

/**
 * Applies `prisma/migrations/<name>/migration.sql` in name order and records each in
 * Prisma's own `_prisma_migrations` table (same columns, checksum = SHA-256 of the
 * file), so a machine with the native Prisma CLI sees them as applied. Everything
 * runs in one IMMEDIATE transaction: concurrent starts serialise on SQLite's write
 * lock and a failed migration leaves nothing behind.
 */
export function migrateSqlite(file: string, migrationsDir: string): AppliedMigration[] {
  const db = new Database(file, { timeout: 10_000 });
  try {
    // WAL lets readers run while a commit is in progress; the setting lives in the file.
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" TEXT PRIMARY KEY NOT NULL,
      "checksum" TEXT NOT NULL,
      "finished_at" DATETIME,
      "migration_name" TEXT NOT NULL,
      "logs" TEXT,
      "rolled_back_at" DATETIME,
      "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
      "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
    )`);
    const migrations = readMigrations(migrationsDir);
    const run = db.transaction(() => {
      const records = db.prepare('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"').all() as MigrationRecord[];
      const pending = new Set(pendingMigrations(migrations, records));
      return migrations.map((migration): AppliedMigration => {
        if (!pending.has(migration)) return { name: migration.name, applied: false };
        db.exec(migration.sql);
        db.prepare(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (?, ?, current_timestamp, ?, current_timestamp, 1)`,
        ).run(randomUUID(), migration.checksum, migration.name);
        return { name: migration.name, applied: true };
      });
    });
    return run.immediate();
  } finally {
    db.close();
  }
}
