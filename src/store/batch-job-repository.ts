import type { Interpretation } from '../inference/interpretation.ts';
import type { BatchJobRecord, BatchJobStatus, BatchJobStore, BatchFormat, BatchRowResult, NewBatchJob, RowError } from '../serving/batch-job-store.ts';
import { UPLOADING, type BatchJobWriter, type JobRow } from './batch-job-writer.ts';
import type { Database } from './database.ts';

const date = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));

/** A row from Prisma or from a writer (dates and JSON possibly as text) as the domain record. */
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
  apiKeyId: row.apiKeyId ?? null,
});

const recordOf = (row: JobRow | undefined) => (row ? toRecord(row) : undefined);

/**
 * Batch jobs: writes through `writer` (one transaction each, in the database's own SQL),
 * reads through Prisma, the same on every database.
 */
export function createBatchJobRepository(db: Database, writer: BatchJobWriter): BatchJobStore {
  const visible = { status: { not: UPLOADING } };
  // No stored id has a NUL character, and PostgreSQL refuses a statement holding one.
  const findJob = async (id: string) => (id.includes('\0') ? undefined : recordOf(await db.batchJob.findFirst({ where: { id, ...visible } }) ?? undefined));

  return {
    async create(job: NewBatchJob, rows: AsyncIterable<readonly string[]>) {
      await writer.insertJob(job);
      let total = 0;
      try {
        for await (const batch of rows) {
          // One short transaction per batch: online history writes interleave with a big upload.
          await writer.insertRows(job.id, total, batch);
          total += batch.length;
        }
      } catch (error) {
        await writer.deleteJob(job.id);
        throw error;
      }
      return toRecord(await writer.publish(job.id, total));
    },
    get: findJob,
    async findByIdempotencyKey(key) {
      return recordOf(await db.batchJob.findFirst({ where: { idempotencyKey: key, ...visible } }) ?? undefined);
    },
    async page(filter, first, afterId) {
      const rows = await db.batchJob.findMany({
        where: {
          status: filter.status ?? visible.status,
          ...(filter.apiKeyId !== undefined ? { apiKeyId: filter.apiKeyId } : {}),
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
    claimNext: async () => recordOf(await writer.claimNext()),
    commitChunk: async (jobId, rows) => recordOf(await writer.commitChunk(jobId, rows)),
    finish: async (jobId, status, error) => recordOf(await writer.finish(jobId, status, error ?? null)),
    async cancel(id) {
      return recordOf(await writer.cancel(id)) ?? findJob(id);
    },
    markNotified: (id) => writer.markNotified(id),
    async unnotified() {
      const rows = await db.batchJob.findMany({
        where: { status: { in: ['SUCCEEDED', 'FAILED', 'CANCELLED'] }, notifyUrl: { not: null }, notifiedAt: null },
        orderBy: { id: 'asc' },
      });
      return rows.map(toRecord);
    },
    deleteUnfinishedUploads: (createdBefore) => writer.deleteUnfinishedUploads(createdBefore),
    start: async (id) => recordOf(await writer.start(id)),
    async unfinished() {
      const rows = await db.batchJob.findMany({ where: { status: { in: ['QUEUED', 'RUNNING'] } }, select: { id: true }, orderBy: { id: 'asc' } });
      return rows.map((r) => r.id);
    },
  };
}
