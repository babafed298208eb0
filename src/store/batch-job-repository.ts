import type Sqlite from 'better-sqlite3';
import type { Interpretation } from '../inference/interpretation.ts';
import {
  ChunkConflictError,
  IdempotencyConflictError,
  type BatchJobRecord,
  type BatchJobStatus,
  type BatchJobStore,
  type BatchFormat,
  type BatchRowResult,
  type NewBatchJob,
  type RowError,
  type ScoredRow,
} from '../serving/batch-job-store.ts';
import type { Database } from './database.ts';
import { predictionInserter } from './sqlite-history-writer.ts';

/** A BatchJob row as Prisma returns it, or as better-sqlite3 does (dates as text, JSON as text). */
interface JobRow {
  id: string;
  modelName: string;
  version: number;
  status: string;
  format: string;
  total: number;
  processed: number;
  failed: number;
  createdAt: Date | string;
  startedAt: Date | string | null;
  finishedAt: Date | string | null;
  error: string | null;
  notifyUrl: string | null;
  notifiedAt: Date | string | null;
  idempotencyKey: string | null;
  interpretation: unknown;
}

const date = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));

const toRecord = (row: JobRow): BatchJobRecord => ({
  id: row.id,
  modelName: row.modelName,
  version: row.version,
  status: row.status as BatchJobStatus,
  format: row.format as BatchFormat,
  total: row.total,
  processed: row.processed,
  failed: row.failed,
  createdAt: new Date(row.createdAt),
  startedAt: date(row.startedAt),
  finishedAt: date(row.finishedAt),
  error: row.error,
  notifyUrl: row.notifyUrl,
  notifiedAt: date(row.notifiedAt),
  idempotencyKey: row.idempotencyKey,
  interpretation: (typeof row.interpretation === 'string' ? JSON.parse(row.interpretation) : (row.interpretation ?? null)) as Interpretation | null,
});

/** Times as Prisma's SQLite adapter writes them, so its reads parse ours. */
const sqlTime = (d: Date) => d.toISOString().replace('Z', '+00:00');

/** Jobs still being written are not jobs yet: no read sees them. */
const UPLOADING = 'UPLOADING';

/** Input rows per INSERT statement (4 parameters each, far below SQLite's 32,766). */
const ROWS_PER_INSERT = 1000;

/**
 * Batch jobs on SQLite: writes on a better-sqlite3 connection (`writer`, synchronous
 * transactions, so a chunk's predictions, row results and counters commit together or
 * not at all), reads through Prisma.
 */
export function createBatchJobRepository(db: Database, writer: Sqlite.Database, options: { onQuery?: (sql: string) => void } = {}): BatchJobStore {
  const insertPredictions = predictionInserter(writer, options.onQuery);
  const insertJob = writer.prepare(
    `INSERT INTO "BatchJob" ("id", "modelName", "version", "status", "format", "total", "createdAt", "notifyUrl", "idempotencyKey", "interpretation")
     VALUES (?, ?, ?, '${UPLOADING}', ?, 0, ?, ?, ?, ?)`,
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
    for (let start = 0; start < inputs.length; start += ROWS_PER_INSERT) {
      const slice = inputs.slice(start, start + ROWS_PER_INSERT);
      insertRowsStatement(slice.length).run(slice.flatMap((input, k) => [jobId, first + start + k, input]));
    }
  });
  const deleteJob = writer.transaction((jobId: string) => {
    writer.prepare(`DELETE FROM "BatchRow" WHERE "jobId" = ?`).run(jobId);
    writer.prepare(`DELETE FROM "BatchJob" WHERE "id" = ?`).run(jobId);
  });
  const publishJob = writer.prepare(`UPDATE "BatchJob" SET "status" = 'QUEUED', "total" = ? WHERE "id" = ? RETURNING *`);
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
    for (let start = 0; start < rows.length; start += ROWS_PER_INSERT) {
      const slice = rows.slice(start, start + ROWS_PER_INSERT);
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
  const start = writer.prepare(
    `UPDATE "BatchJob" SET "status" = 'RUNNING', "startedAt" = COALESCE("startedAt", ?) WHERE "id" = ? AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`,
  );
  const finish = writer.prepare(`UPDATE "BatchJob" SET "status" = ?, "error" = ?, "finishedAt" = ? WHERE "id" = ? AND "status" = 'RUNNING' RETURNING *`);
  const cancel = writer.prepare(`UPDATE "BatchJob" SET "status" = 'CANCELLED', "finishedAt" = ? WHERE "id" = ? AND "status" IN ('QUEUED', 'RUNNING') RETURNING *`);
  const markNotified = writer.prepare(`UPDATE "BatchJob" SET "notifiedAt" = ? WHERE "id" = ?`);
  // Times are ISO text of one width and zone: text order is time order.
  const deleteUploads = writer.transaction((before: string) => {
    writer.prepare(`DELETE FROM "BatchRow" WHERE "jobId" IN (SELECT "id" FROM "BatchJob" WHERE "status" = '${UPLOADING}' AND "createdAt" < ?)`).run(before);
    return writer.prepare(`DELETE FROM "BatchJob" WHERE "status" = '${UPLOADING}' AND "createdAt" < ?`).run(before).changes;
  });

  const visible = { status: { not: UPLOADING } };
  const findJob = async (id: string) => {
    const row = await db.batchJob.findFirst({ where: { id, ...visible } });
    return row ? toRecord(row) : undefined;
  };

  return {
    async create(job: NewBatchJob, rows: AsyncIterable<readonly string[]>) {
      try {
        insertJob.run(job.id, job.modelName, job.version, job.format, sqlTime(job.createdAt), job.notifyUrl, job.idempotencyKey, job.interpretation ? JSON.stringify(job.interpretation) : null);
      } catch (error) {
        if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && job.idempotencyKey !== null) {
          throw new IdempotencyConflictError(`idempotencyKey \`${job.idempotencyKey}\` is taken by a job still being submitted`);
        }
        throw error;
      }
      let total = 0;
      try {
        for await (const batch of rows) {
          // One short transaction per batch: online history writes interleave with a big upload.
          insertRows.immediate(job.id, total, batch);
          total += batch.length;
        }
      } catch (error) {
        deleteJob.immediate(job.id);
        throw error;
      }
      return toRecord(publishJob.get(total, job.id) as JobRow);
    },
    get: findJob,
    async findByIdempotencyKey(key) {
      const row = await db.batchJob.findFirst({ where: { idempotencyKey: key, ...visible } });
      return row ? toRecord(row) : undefined;
    },
    async page(filter, first, afterId) {
      const rows = await db.batchJob.findMany({
        where: {
          status: filter.status ?? visible.status,
          ...(afterId !== undefined ? { id: { lt: afterId } } : {}),
        },
        orderBy: { id: 'desc' },
        take: first + 1,
      });
      return { records: rows.slice(0, first).map(toRecord), hasNextPage: rows.length > first };
    },
    async results(jobId, first, afterIndex) {
      const rows = await db.batchRow.findMany({
        where: {
          jobId,
          OR: [{ predictionId: { not: null } }, { errorCode: { not: null } }],
          ...(afterIndex !== undefined ? { index: { gt: afterIndex } } : {}),
        },
        select: { index: true, predictionId: true, errorCode: true, errorMessage: true },
        orderBy: { index: 'asc' },
        take: first,
      });
      return rows.map(
        (r): BatchRowResult => ({
          index: r.index,
          predictionId: r.predictionId,
          error: r.errorCode !== null ? { code: r.errorCode as RowError['code'], message: r.errorMessage ?? '' } : null,
        }),
      );
    },
    async readRows(jobId, fromIndex, limit) {
      return db.batchRow.findMany({
        where: { jobId, index: { gte: fromIndex } },
        select: { index: true, input: true },
        orderBy: { index: 'asc' },
        take: limit,
      });
    },
    async running() {
      return (await db.batchJob.findMany({ where: { status: 'RUNNING' }, orderBy: { id: 'asc' } })).map(toRecord);
    },
    async claimNext() {
      const row = claim.get(sqlTime(new Date())) as JobRow | undefined;
      return row ? toRecord(row) : undefined;
    },
    async start(id) {
      const row = start.get(sqlTime(new Date()), id) as JobRow | undefined;
      return row ? toRecord(row) : undefined;
    },
    async unfinished() {
      const rows = await db.batchJob.findMany({ where: { status: { in: ['QUEUED', 'RUNNING'] } }, select: { id: true }, orderBy: { id: 'asc' } });
      return rows.map((r) => r.id);
    },
    async commitChunk(jobId, rows) {
      // IMMEDIATE: the transaction reads before it writes; a deferred one could not upgrade to
      // a write lock after another process committed (SQLITE_BUSY at once, busy_timeout or not).
      const row = commit.immediate(jobId, rows);
      return row ? toRecord(row) : undefined;
    },
    async finish(jobId, status, error) {
      const row = finish.get(status, error ?? null, sqlTime(new Date()), jobId) as JobRow | undefined;
      return row ? toRecord(row) : undefined;
    },
    async cancel(id) {
      const row = cancel.get(sqlTime(new Date()), id) as JobRow | undefined;
      return row ? toRecord(row) : findJob(id);
    },
    async markNotified(id) {
      markNotified.run(sqlTime(new Date()), id);
    },
    async unnotified() {
      const rows = await db.batchJob.findMany({
        where: { status: { in: ['SUCCEEDED', 'FAILED', 'CANCELLED'] }, notifyUrl: { not: null }, notifiedAt: null },
        orderBy: { id: 'asc' },
      });
      return rows.map(toRecord);
    },
    async deleteUnfinishedUploads(createdBefore) {
      return deleteUploads.immediate(sqlTime(createdBefore));
    },
  };
}
