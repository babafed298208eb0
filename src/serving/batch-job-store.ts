import type { Interpretation } from '../inference/interpretation.ts';
import type { PredictionRecord } from './records.ts';

/** The domain records of batch jobs, and where they are kept (`store/` implements it). */

export type BatchJobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
export const FINAL_STATUSES: ReadonlySet<BatchJobStatus> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** How a row's input is written: one CSV line of numbers, or one JSON value (JSON Lines). */
export type BatchFormat = 'CSV' | 'JSONL';

export interface BatchJobRecord {
  /** UUIDv7: time-sortable. */
  id: string;
  modelName: string;
  /** Resolved at submit; every row runs on this version. */
  version: number;
  status: BatchJobStatus;
  format: BatchFormat;
  total: number;
  /** Rows done, failed ones included. Rows are done in index order: the next row is `processed`. */
  processed: number;
  failed: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Why the job FAILED. */
  error: string | null;
  notifyUrl: string | null;
  notifiedAt: Date | null;
  idempotencyKey: string | null;
  /** What the outputs mean, fixed at submit. */
  interpretation: Interpretation | null;
  /** The API key that submitted it (null when auth is off); its rows' predictions carry it too. */
  apiKeyId: string | null;
}

export interface NewBatchJob {
  id: string;
  modelName: string;
  version: number;
  format: BatchFormat;
  createdAt: Date;
  notifyUrl: string | null;
  idempotencyKey: string | null;
  interpretation: Interpretation | null;
  /** The API key submitting it; null or absent when auth is off. */
  apiKeyId?: string | null;
}

/** Why one row failed; the job goes on. */
export interface RowError {
  /** BAD_USER_INPUT (the row cannot be read or does not fit the model) or INFERENCE_FAILED. */
  code: 'BAD_USER_INPUT' | 'INFERENCE_FAILED';
  message: string;
}

/** One scored row: its prediction, or its error. */
export type ScoredRow = { index: number; prediction: PredictionRecord; error?: undefined } | { index: number; prediction?: undefined; error: RowError };

/** A done row as stored: the prediction's id or the error. */
export interface BatchRowResult {
  index: number;
  predictionId: string | null;
  error: RowError | null;
}

export interface BatchRowInput {
  index: number;
  input: string;
}

/**
 * A chunk's rows were already done: another worker holds the job (its lease ran out while
 * this one still worked). Nothing of the chunk was committed; this worker lets the job go.
 */
export class ChunkConflictError extends Error {
  override readonly name = 'ChunkConflictError';
}

/** The idempotency key is taken by a job still being written (a concurrent submit). */
export class IdempotencyConflictError extends Error {
  override readonly name = 'IdempotencyConflictError';
}

export interface BatchJobStore {
  /**
   * Writes the job and its rows. The job stays invisible (and is deleted at the next
   * start if the process dies) until every row is written; if `rows` throws, the job and
   * its rows are deleted and the error rethrown. Resolves with the QUEUED job.
   */
  create(job: NewBatchJob, rows: AsyncIterable<readonly string[]>): Promise<BatchJobRecord>;
  get(id: string): Promise<BatchJobRecord | undefined>;
  findByIdempotencyKey(key: string): Promise<BatchJobRecord | undefined>;
  /** Newest first; `apiKeyId` (when given) keeps only that key's jobs. */
  page(filter: { status?: BatchJobStatus | null; apiKeyId?: string }, first: number, afterId?: string): Promise<{ records: BatchJobRecord[]; hasNextPage: boolean }>;
  /** Done rows in index order, from `afterIndex + 1`. */
  results(jobId: string, first: number, afterIndex?: number): Promise<BatchRowResult[]>;
  /** Input rows in index order, from `fromIndex`. */
  readRows(jobId: string, fromIndex: number, limit: number): Promise<BatchRowInput[]>;
  /** Jobs left RUNNING (by a process that stopped): resumed first. */
  running(): Promise<BatchJobRecord[]>;
  /** Takes the oldest QUEUED job and marks it RUNNING; undefined when none waits. */
  claimNext(): Promise<BatchJobRecord | undefined>;
  /** Marks a QUEUED job RUNNING (a RUNNING one stays: it is being resumed); undefined when it is final or unknown. */
  start(id: string): Promise<BatchJobRecord | undefined>;
  /** Ids of QUEUED and RUNNING jobs, oldest first (to hand to a job queue that may have lost them). */
  unfinished(): Promise<string[]>;
  /**
   * Commits a chunk in one transaction: its predictions, each row's result and the job's
   * counters. Undefined (and nothing written) when the job is no longer RUNNING (cancelled).
   */
  commitChunk(jobId: string, rows: readonly ScoredRow[]): Promise<BatchJobRecord | undefined>;
  /** RUNNING → SUCCEEDED or FAILED; undefined when the job was not RUNNING. */
  finish(jobId: string, status: 'SUCCEEDED' | 'FAILED', error?: string): Promise<BatchJobRecord | undefined>;
  /** QUEUED or RUNNING → CANCELLED; the job as it is afterwards (unchanged when already final). */
  cancel(id: string): Promise<BatchJobRecord | undefined>;
  markNotified(id: string): Promise<void>;
  /** Final jobs with a notifyUrl not yet notified (the process stopped before it could). */
  unnotified(): Promise<BatchJobRecord[]>;
  /**
   * Deletes jobs created before `createdBefore` whose rows are still being written: their
   * process stopped. (Younger ones may be another replica's upload in progress.)
   */
  deleteUnfinishedUploads(createdBefore: Date): Promise<number>;
}

/** A job as reported outside the API (the notifyUrl POST, the CLI's summary line). */
export function summaryOf(job: BatchJobRecord) {
  return {
    id: job.id,
    model: job.modelName,
    version: job.version,
    status: job.status,
    total: job.total,
    processed: job.processed,
    failed: job.failed,
    error: job.error,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
  };
}
