import type { NewBatchJob, ScoredRow } from '../serving/batch-job-store.ts';

/** A BatchJob row as a writer returns it: Prisma's columns, with dates and JSON possibly as text (SQLite). */
export interface JobRow {
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
  apiKeyId: string | null;
}

/** The status of a job whose rows are still being written: no read sees it. */
export const UPLOADING = 'UPLOADING';

/** Input rows per INSERT or UPDATE statement: far below both databases' parameter limits. */
export const ROWS_PER_STATEMENT = 1000;

/**
 * The writes of batch jobs in one database's SQL (sqlite-batch-job-writer.ts,
 * postgres-batch-job-writer.ts). Each method is one transaction; batch-job-repository.ts
 * adds the reads (Prisma) and turns rows into records.
 */
export interface BatchJobWriter {
  /** Inserts the job UPLOADING with no rows. IdempotencyConflictError when its idempotencyKey is taken. */
  insertJob(job: NewBatchJob): Promise<void>;
  /** Inserts input rows numbered from `first`, in one transaction. */
  insertRows(jobId: string, first: number, inputs: readonly string[]): Promise<void>;
  /** Deletes the job and its rows. */
  deleteJob(jobId: string): Promise<void>;
  /** UPLOADING → QUEUED with its row count. */
  publish(jobId: string, total: number): Promise<JobRow>;
  /** The oldest QUEUED job, now RUNNING; never the same job to two callers, even in two processes. */
  claimNext(): Promise<JobRow | undefined>;
  /**
   * The chunk's predictions, row results and counters in one transaction, only while the
   * job is RUNNING (undefined otherwise, nothing written). Throws ChunkConflictError, writing
   * nothing, when a row is already done or does not exist: rows are done exactly once.
   */
  commitChunk(jobId: string, rows: readonly ScoredRow[]): Promise<JobRow | undefined>;
  /** RUNNING → `status`; undefined when the job was not RUNNING. */
  finish(jobId: string, status: 'SUCCEEDED' | 'FAILED', error: string | null): Promise<JobRow | undefined>;
  /** QUEUED or RUNNING → CANCELLED; undefined when the job was neither. */
  cancel(id: string): Promise<JobRow | undefined>;
  markNotified(id: string): Promise<void>;
  /** Marks a QUEUED job RUNNING (a RUNNING one stays); undefined when it is neither. */
  start(id: string): Promise<JobRow | undefined>;
  /** Deletes UPLOADING jobs created before `createdBefore`, and their rows; how many jobs. */
  deleteUnfinishedUploads(createdBefore: Date): Promise<number>;
}
