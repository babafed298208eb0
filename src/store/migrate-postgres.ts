import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { MigrationError, pendingMigrations, readMigrations, type AppliedMigration, type MigrationRecord } from './migrate.ts';

/**
 * The advisory lock key Prisma Migrate takes on PostgreSQL: a `prisma migrate deploy` and a
 * starting gateway wait for each other too. Advisory locks are per database.
 */
const MIGRATION_LOCK = 72707369;

/**
 * Applies `<migrationsDir>/<name>/migration.sql` in name order on the database at
 * `connectionString`, each in a transaction of its own, and records each in Prisma's
 * `_prisma_migrations` table (Prisma's columns; checksum = SHA-256 of the file), so a
 * machine with the native Prisma CLI sees them as applied. Replicas starting together
 * serialise on an advisory lock: the first applies, the others then find nothing to do.
 * Throws MigrationError, before applying anything, when an applied migration's file
 * changed; a migration that fails rolls back whole and is not recorded.
 */
export async function migratePostgres(connectionString: string, migrationsDir: string): Promise<AppliedMigration[]> {
  const migrations = readMigrations(migrationsDir);
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    // Held by this session until unlocked or disconnected (a crash releases it too).
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const records = (await client.query<MigrationRecord>('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"')).rows;
    const pending = new Set(pendingMigrations(migrations, records));
    const result: AppliedMigration[] = [];
    for (const migration of migrations) {
      if (!pending.has(migration)) {
        result.push({ name: migration.name, applied: false });
        continue;
      }
      try {
        await client.query('BEGIN');
        // No parameters: the simple query protocol, which runs a script of many statements.
        await client.query(migration.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [randomUUID(), migration.checksum, migration.name],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined); // the connection may be gone; the error below says why
        throw new MigrationError(`Migration \`${migration.name}\` failed: ${(error as Error).message}`, { cause: error });
      }
      result.push({ name: migration.name, applied: true });
    }
    return result;
  } finally {
    // Ending the session releases the advisory lock.
    await client.end();
  }
}
