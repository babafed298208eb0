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
    const names = existsSync(migrationsDir)
      ? readdirSync(migrationsDir, { withFileTypes: true })
          .filter((d) => d.isDirectory() && existsSync(join(migrationsDir, d.name, 'migration.sql')))
          .map((d) => d.name)
          .sort()
      : [];
    const run = db.transaction(() => {
      const applied = new Map(
        (db.prepare('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"').all() as Array<{
          migration_name: string;
          checksum: string;
          finished_at: string | null;
          rolled_back_at: string | null;
        }>)
          .filter((row) => row.rolled_back_at === null)
          .map((row) => [row.migration_name, row]),
      );
      return names.map((name): AppliedMigration => {
        const sql = readFileSync(join(migrationsDir, name, 'migration.sql'), 'utf8');
        const checksum = createHash('sha256').update(sql).digest('hex');
        const previous = applied.get(name);
        if (previous) {
          if (previous.finished_at === null) throw new MigrationError(`Migration \`${name}\` failed earlier and must be resolved by hand`);
          if (previous.checksum !== checksum) throw new MigrationError(`Migration \`${name}\` was modified after it was applied`);
          return { name, applied: false };
        }
        db.exec(sql);
        db.prepare(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (?, ?, current_timestamp, ?, current_timestamp, 1)`,
        ).run(randomUUID(), checksum, name);
        return { name, applied: true };
      });
    });
    return run.immediate();
  } finally {
    db.close();
  }
}
