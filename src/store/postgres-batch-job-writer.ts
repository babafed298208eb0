import type pg from 'pg';
import { ChunkConflictError, IdempotencyConflictError, type ScoredRow } from '../serving/batch-job-store.ts';
import { ROWS_PER_STATEMENT, UPLOADING, type BatchJobWriter, type JobRow } from './batch-job-writer.ts';
import { postgresPredictionInserter } from './postgres-history-writer.ts';
import { inTransaction, slices, timestampOf } from './postgres-pool.ts';

const UNIQUE_VIOLATION = '23505';

const rowInsertSql = (n: number) =>
  `INSERT INTO "BatchRow" ("jobId", "index", "input") VALUES ${Array.from({ length: n }, (_, k) => `($1, $${2 * k + 2}, $${2 * k + 3})`).join(', ')}`;

// One statement per slice of rows, not one per row (as on SQLite). Typed VALUES: PostgreSQL
// infers no column types for a VALUES list outside an INSERT. The BETWEEN ($2, $3: the
// slice's lowest and highest index) is implied by the join but makes the planner probe the
// primary key for the slice: without it, it scanned every row of the job per chunk.
const resultUpdateSql = (n: number) =>
  `UPDATE "BatchRow" SET "predictionId" = v."predictionId", "errorCode" = v."errorCode", "errorMessage" = v."errorMessage"
   FROM (VALUES ${Array.from({ length: n }, (_, k) => `($${4 * k + 4}::integer, $${4 * k + 5}::text, $${4 * k + 6}::text, $${4 * k + 7}::text)`).join(', ')})
     AS v("index", "predictionId", "errorCode", "errorMessage")
   WHERE "BatchRow"."jobId" = $1 AND "BatchRow"."index" BETWEEN $2 AND $3 AND "BatchRow"."index" = v."index"
     AND "BatchRow"."predictionId" IS NULL AND "BatchRow"."errorCode" IS NULL`;

/**
 * Batch-job writes on PostgreSQL, on `pool`: each method one transaction (READ COMMITTED,
 * PostgreSQL's default). Where SQLite's single writer lock serialises everything, here row
 * locks do: a claim skips jobs another process is claiming, a chunk commit locks its job
 * so a concurrent cancel waits for it (or it sees the cancel and writes nothing).
 */
export function createPostgresBatchJobWriter(pool: pg.Pool, options: { onQuery?: (sql: string) => void } = {}): BatchJobWriter {
  const insertPredictions = postgresPredictionInserter(options.onQuery);
  const first = async (client: pg.Pool | pg.ClientBase, text: string, values: unknown[]) => (await client.query<JobRow>(text, values)).rows[0];

  return {
    async insertJob(job) {
      try {
        await pool.query(
          `INSERT INTO "BatchJob" ("id", "modelName", "version", "status", "format", "total", "createdAt", "notifyUrl", "idempotencyKey", "interpretation", "apiKeyId")
           VALUES ($1, $2, $3, '${UPLOADING}', $4, 0, $5, $6, $7, $8, $9)`,
          [job.id, job.modelName, job.version, job.format, timestampOf(job.createdAt), job.notifyUrl, job.idempotencyKey, job.interpretation ? JSON.stringify(job.interpretation) : null, job.apiKeyId ?? null],
        );
      } catch (error) {
        const { code, constraint } = error as { code?: string; constraint?: string };
        if (code === UNIQUE_VIOLATION && constraint === 'BatchJob_idempotencyKey_key') {
          throw new IdempotencyConflictError(`idempotencyKey \`${job.idempotencyKey}\` is taken by a job still being submitted`);
        }
        throw error;
      }
    },
    async insertRows(jobId, firstIndex, inputs) {
      await inTransaction(pool, async (client) => {
        let index = firstIndex;
        for (const slice of slices(inputs, ROWS_PER_STATEMENT)) {
          await client.query(rowInsertSql(slice.length), [jobId, ...slice.flatMap((input, k) => [index + k, input])]);
          index += slice.length;
        }
      });
    },
    async deleteJob(jobId) {
      // Its rows go with it: the foreign key is ON DELETE CASCADE.
      await pool.query(`DELETE FROM "BatchJob" WHERE "id" = $1`, [jobId]);
    },
    async publish(jobId, total) {
      return (await first(pool, `UPDATE "BatchJob" SET "status" = 'QUEUED', "total" = $1 WHERE "id" = $2 RETURNING *`, [total, jobId]))!;
    },
    async claimNext() {
      // SKIP LOCKED: a job another process is claiming right now is passed over, not waited
      // for and claimed twice. A job claimed and committed since this statement began fails
      // the re-checked "QUEUED" and is skipped too (then nothing is claimed this time).
      return first(
        pool,
        `UPDATE "BatchJob" SET "status" = 'RUNNING', "startedAt" = $1
         WHERE "id" = (SELECT "id" FROM "BatchJob" WHERE "status" = 'QUEUED' ORDER BY "id" LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING *`,
        [timestampOf(new Date())],
      );
    },
    async commitChunk(jobId, rows: readonly ScoredRow[]) {
      return inTransaction(pool, async (client) => {
        // The job's row lock holds "RUNNING" true until this commit: a cancel waits for it.
        const job = await client.query<{ status: string }>(`SELECT "status" FROM "BatchJob" WHERE "id" = $1 FOR UPDATE`, [jobId]);
        if (job.rows[0]?.status !== 'RUNNING') return undefined;
        await insertPredictions(client, rows.flatMap((r) => (r.prediction ? [r.prediction] : [])));
        let failed = 0;
        for (const slice of slices(rows, ROWS_PER_STATEMENT)) {
          const indices = slice.map((row) => row.index);
          const values = slice.flatMap((row) => [row.index, row.prediction?.id ?? null, row.error?.code ?? null, row.error?.message ?? null]);
          const changes = (await client.query(resultUpdateSql(slice.length), [jobId, Math.min(...indices), Math.max(...indices), ...values])).rowCount ?? 0;
          // Never twice: a row already done means the caller is wrong, and nothing of the chunk may commit.
          if (changes !== slice.length) throw new ChunkConflictError(`Batch job ${jobId}: ${slice.length - changes} of rows ${slice[0]!.index}..${slice.at(-1)!.index} are already done or do not exist`);
          failed += slice.filter((row) => row.error).length;
        }
        return first(client, `UPDATE "BatchJob" SET "processed" = "processed" + $1, "failed" = "failed" + $2 WHERE "id" = $3 RETURNING *`, [rows.length, failed, jobId]);
      });
    },
    async finish(jobId, status, error) {
      return first(pool, `UPDATE "BatchJob" SET "status" = $1, "error" = $2, "finishedAt" = $3 WHERE "id" = $4 AND "status" = 'RUNNING' RETURNING *`, [
        status,
        error,
        timestampOf(new Date()),
        jobId,
      ]);
    },
    async cancel(id) {
      return first(pool, `UPDATE "BatchJob" SET "status" = 'CANCELLED', "finishedAt" = $1 WHERE "id" = $2 AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`, [timestampOf(new Date()), id]);
    },
    async markNotified(id) {
      await pool.query(`UPDATE "BatchJob" SET "notifiedAt" = $1 WHERE "id" = $2`, [timestampOf(new Date()), id]);
    },
    async start(id) {
      return first(
        pool,
        `UPDATE "BatchJob" SET "status" = 'RUNNING', "startedAt" = COALESCE("startedAt", $1) WHERE "id" = $2 AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`,
        [timestampOf(new Date()), id],
      );
    },
    async deleteUnfinishedUploads(createdBefore) {
      return (await pool.query(`DELETE FROM "BatchJob" WHERE "status" = '${UPLOADING}' AND "createdAt" < $1`, [timestampOf(createdBefore)])).rowCount ?? 0;
    },
  };
}
