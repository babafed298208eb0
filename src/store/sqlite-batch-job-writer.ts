import type Sqlite from 'better-sqlite3';
import { ChunkConflictError, IdempotencyConflictError, type NewBatchJob, type ScoredRow } from '../serving/batch-job-store.ts';
import { ROWS_PER_STATEMENT, UPLOADING, type BatchJobWriter, type JobRow } from './batch-job-writer.ts';
import { predictionInserter } from './sqlite-history-writer.ts';

/** Times as Prisma's SQLite adapter writes them, so its reads parse ours. */
const sqlTime = (d: Date) => d.toISOString().replace('Z', '+00:00');

/**
 * Batch-job writes on a better-sqlite3 connection of their own: synchronous transactions,
 * so a chunk's predictions, row results and counters commit together or not at all, and
 * SQLite's single writer lock serialises every write (claims included).
 */
export function createSqliteBatchJobWriter(writer: Sqlite.Database, options: { onQuery?: (sql: string) => void } = {}): BatchJobWriter {
  const insertPredictions = predictionInserter(writer, options.onQuery);
  const insertJob = writer.prepare(
    `INSERT INTO "BatchJob" ("id", "modelName", "version", "status", "format", "total", "createdAt", "notifyUrl", "idempotencyKey", "interpretation", "apiKeyId")
     VALUES (?, ?, ?, '${UPLOADING}', ?, 0, ?, ?, ?, ?, ?)`,
  );
  const rowInserts = new Map<number, Sqlite.Statement>();
  const insertRowsStatement = (n: number) => {
    let statement = rowInserts.get(n);
    if (!statement) {
      statement = writer.prepare(`INSERT INTO "BatchRow" ("jobId", "index", "input") VALUES ${Array.from({ length: n }, () => '(?, ?, ?)').join(', ')}`);
      rowInserts.set(n, statement);
    }
    return statement;
  };
  const insertRows = writer.transaction((jobId: string, first: number, inputs: readonly string[]) => {
    for (let start = 0; start < inputs.length; start += ROWS_PER_STATEMENT) {
      const slice = inputs.slice(start, start + ROWS_PER_STATEMENT);
      insertRowsStatement(slice.length).run(slice.flatMap((input, k) => [jobId, first + start + k, input]));
    }
  });
  const deleteJob = writer.transaction((jobId: string) => {
    writer.prepare(`DELETE FROM "BatchRow" WHERE "jobId" = ?`).run(jobId);
    writer.prepare(`DELETE FROM "BatchJob" WHERE "id" = ?`).run(jobId);
  });
  const publish = writer.prepare(`UPDATE "BatchJob" SET "status" = 'QUEUED', "total" = ? WHERE "id" = ? RETURNING *`);
  const statusOf = writer.prepare(`SELECT "status" FROM "BatchJob" WHERE "id" = ?`).pluck();
  // One statement per slice of rows, not one per row: at 100,000 rows a job, statement
  // round trips were a fifth of the commit time.
  const resultUpdates = new Map<number, Sqlite.Statement>();
  const setResultsStatement = (n: number) => {
    let statement = resultUpdates.get(n);
    if (!statement) {
      statement = writer.prepare(
        `UPDATE "BatchRow" SET "predictionId" = v.column2, "errorCode" = v.column3, "errorMessage" = v.column4
         FROM (VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?)').join(', ')}) AS v
         WHERE "BatchRow"."jobId" = ? AND "BatchRow"."index" = v.column1 AND "BatchRow"."predictionId" IS NULL AND "BatchRow"."errorCode" IS NULL`,
      );
      resultUpdates.set(n, statement);
    }
    return statement;
  };
  const advance = writer.prepare(`UPDATE "BatchJob" SET "processed" = "processed" + ?, "failed" = "failed" + ? WHERE "id" = ? RETURNING *`);
  const commit = writer.transaction((jobId: string, rows: readonly ScoredRow[]): JobRow | undefined => {
    if (statusOf.get(jobId) !== 'RUNNING') return undefined;
    insertPredictions(rows.flatMap((r) => (r.prediction ? [r.prediction] : [])));
    let failed = 0;
    for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
      const slice = rows.slice(start, start + ROWS_PER_STATEMENT);
      const values = slice.flatMap((row) => [row.index, row.prediction?.id ?? null, row.error?.code ?? null, row.error?.message ?? null]);
      const changes = setResultsStatement(slice.length).run(...values, jobId).changes;
      // Never twice: a row already done means the caller is wrong, and nothing of the chunk may commit.
      if (changes !== slice.length) throw new ChunkConflictError(`Batch job ${jobId}: ${slice.length - changes} of rows ${slice[0]!.index}..${slice.at(-1)!.index} are already done or do not exist`);
      failed += slice.filter((row) => row.error).length;
    }
    return advance.get(rows.length, failed, jobId) as JobRow;
  });
  const claim = writer.prepare(
    `UPDATE "BatchJob" SET "status" = 'RUNNING', "startedAt" = ?
     WHERE "id" = (SELECT "id" FROM "BatchJob" WHERE "status" = 'QUEUED' ORDER BY "id" LIMIT 1) RETURNING *`,
  );
  const finish = writer.prepare(`UPDATE "BatchJob" SET "status" = ?, "error" = ?, "finishedAt" = ? WHERE "id" = ? AND "status" = 'RUNNING' RETURNING *`);
  const cancel = writer.prepare(`UPDATE "BatchJob" SET "status" = 'CANCELLED', "finishedAt" = ? WHERE "id" = ? AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`);
  const markNotified = writer.prepare(`UPDATE "BatchJob" SET "notifiedAt" = ? WHERE "id" = ?`);
  const start = writer.prepare(
    `UPDATE "BatchJob" SET "status" = 'RUNNING', "startedAt" = COALESCE("startedAt", ?) WHERE "id" = ? AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`,
  );
  // Times are ISO text of one width and zone: text order is time order.
  const deleteUploads = writer.transaction((before: string) => {
    writer.prepare(`DELETE FROM "BatchRow" WHERE "jobId" IN (SELECT "id" FROM "BatchJob" WHERE "status" = '${UPLOADING}' AND "createdAt" < ?)`).run(before);
    return writer.prepare(`DELETE FROM "BatchJob" WHERE "status" = '${UPLOADING}' AND "createdAt" < ?`).run(before).changes;
  });

  return {
    async insertJob(job: NewBatchJob) {
      try {
        insertJob.run(job.id, job.modelName, job.version, job.format, sqlTime(job.createdAt), job.notifyUrl, job.idempotencyKey, job.interpretation ? JSON.stringify(job.interpretation) : null, job.apiKeyId ?? null);
      } catch (error) {
        if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && job.idempotencyKey !== null) {
          throw new IdempotencyConflictError(`idempotencyKey \`${job.idempotencyKey}\` is taken by a job still being submitted`);
        }
        throw error;
      }
    },
    insertRows: async (jobId, first, inputs) => insertRows.immediate(jobId, first, inputs),
    deleteJob: async (jobId) => deleteJob.immediate(jobId),
    publish: async (jobId, total) => publish.get(total, jobId) as JobRow,
    claimNext: async () => claim.get(sqlTime(new Date())) as JobRow | undefined,
    // IMMEDIATE: the transaction reads before it writes; a deferred one could not upgrade to
    // a write lock after another process committed (SQLITE_BUSY at once, busy_timeout or not).
    commitChunk: async (jobId, rows) => commit.immediate(jobId, rows),
    start: async (id) => start.get(sqlTime(new Date()), id) as JobRow | undefined,
    finish: async (jobId, status, error) => finish.get(status, error, sqlTime(new Date()), jobId) as JobRow | undefined,
    cancel: async (id) => cancel.get(sqlTime(new Date()), id) as JobRow | undefined,
    markNotified: async (id) => {
      markNotified.run(sqlTime(new Date()), id);
    },
    deleteUnfinishedUploads: async (createdBefore) => deleteUploads.immediate(sqlTime(createdBefore)),
  };
}
