import { isVisibleTo } from '../auth/principal.ts';
import { newId } from './ids.ts';
import type { Logger } from 'pino';
import { BadUserInputError, NotFoundError, type InputIssue } from '../errors.ts';
import { interpretationOf } from '../inference/interpretation.ts';
import type { ModelRepository } from '../inference/repository.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import { IdempotencyConflictError, type BatchFormat, type BatchJobRecord, type BatchJobStore } from './batch-job-store.ts';
import type { Notifier } from './batch-notify.ts';
import { fileRows, firstLineOf, formatOfUpload, inlineRows } from './batch-rows.ts';

/** A file the transport has put on disk (an upload). */
export interface BatchFile {
  path: string;
  filename: string;
  mimetype: string;
}

export interface SubmitBatchJob {
  model: string;
  version?: number | null;
  rows?: ReadonlyArray<readonly number[]> | null;
  file?: BatchFile | null;
  format?: BatchFormat | null;
  notifyUrl?: string | null;
  idempotencyKey?: string | null;
  /** The API key submitting it (the job and its rows' predictions carry it); null or absent when auth is off. */
  apiKeyId?: string | null;
}

export interface BatchJobLimits {
  /** Rows per job at most (MAX_BATCH_ROWS). */
  maxRows: number;
}

export type BatchJobService = ReturnType<typeof createBatchJobService>;

const MAX_KEY_LENGTH = 200;

/**
 * Submitting and cancelling batch jobs. A submit checks everything it can before it
 * queues (the model version, the limits, the notify URL), writes the job with all its
 * rows, and answers QUEUED; the worker does the rest. The same idempotencyKey answers
 * the job it made the first time, so a scheduler can retry a submit safely.
 */
export function createBatchJobService(deps: { store: BatchJobStore; models: ModelRepository; bus: EventBus; notifier: Notifier; queued: (jobId: string) => Promise<void>; log: Logger; limits: BatchJobLimits }) {
  const { store, models, bus, notifier, limits } = deps;

  function check(input: SubmitBatchJob): void {
    const issues: InputIssue[] = [];
    if ((input.rows == null) === (input.file == null)) issues.push({ path: ['input'], message: 'give exactly one of `rows` or `file`' });
    if (input.rows != null && input.format != null && input.format !== 'JSONL') issues.push({ path: ['input', 'format'], message: '`format` applies to `file` only' });
    if (input.notifyUrl != null && !isHttpUrl(input.notifyUrl)) issues.push({ path: ['input', 'notifyUrl'], message: 'expected an http or https URL' });
    if (input.idempotencyKey != null && (input.idempotencyKey.length === 0 || input.idempotencyKey.length > MAX_KEY_LENGTH)) {
      issues.push({ path: ['input', 'idempotencyKey'], message: `expected 1 to ${MAX_KEY_LENGTH} characters` });
    }
    if (issues.length > 0) throw new BadUserInputError(issues);
  }

  async function existing(input: SubmitBatchJob): Promise<BatchJobRecord | undefined> {
    if (input.idempotencyKey == null) return undefined;
    const job = await store.findByIdempotencyKey(input.idempotencyKey);
    // Keys are global: another API key's job is not returned (or named), only refused.
    if (job && job.apiKeyId !== (input.apiKeyId ?? null)) {
      throw new BadUserInputError([{ path: ['input', 'idempotencyKey'], message: 'already used by another API key' }]);
    }
    if (job && job.modelName !== input.model) {
      throw new BadUserInputError([{ path: ['input', 'idempotencyKey'], message: `already used by job ${job.id} of model \`${job.modelName}\`` }]);
    }
    return job;
  }

  return {
    async submit(input: SubmitBatchJob): Promise<BatchJobRecord> {
      check(input);
      const before = await existing(input);
      if (before) return before;
      const version = models.resolve(input.model, input.version);
      let format: BatchFormat = 'JSONL';
      let rows: AsyncIterable<readonly string[]>;
      if (input.file) {
        format = input.format ?? formatOfUpload(input.file, await firstLineOf(input.file.path));
        rows = fileRows(input.file.path, format, { maxRows: limits.maxRows, path: ['input', 'file'] });
      } else {
        rows = inlineRows(input.rows!, { maxRows: limits.maxRows, path: ['input', 'rows'] });
      }
      let job: BatchJobRecord;
      try {
        job = await store.create(
          {
            id: newId(),
            modelName: version.name,
            version: version.version,
            format,
            createdAt: new Date(),
            notifyUrl: input.notifyUrl ?? null,
            idempotencyKey: input.idempotencyKey ?? null,
            interpretation: interpretationOf(version.manifest, version.outputs[0]?.name),
            apiKeyId: input.apiKeyId ?? null,
          },
          rows,
        );
      } catch (error) {
        if (!(error instanceof IdempotencyConflictError)) throw error;
        const winner = await existing(input);
        if (winner) return winner;
        throw new BadUserInputError([{ path: ['input', 'idempotencyKey'], message: error.message }]);
      }
      bus.publish('batch-job.progress', job);
      // The job is committed: if the dispatcher cannot be told now, it finds the job at its next start.
      await deps.queued(job.id).catch((error: unknown) => deps.log.warn({ job: job.id, err: error }, 'batch job queued in the database only'));
      return job;
    },

    /**
     * Stops a QUEUED or RUNNING job (a running one after its chunk in flight); a final job is
     * returned as it is. `owner` (auth/principal.ts `ownerOf`): another key's job is NOT_FOUND, like an unknown id.
     */
    async cancel(id: string, owner?: string): Promise<BatchJobRecord> {
      const before = await store.get(id);
      if (!before || !isVisibleTo(owner, before)) throw new NotFoundError('batch job', id);
      const job = await store.cancel(id);
      if (!job) throw new NotFoundError('batch job', id);
      if (before.status !== job.status) {
        bus.publish('batch-job.progress', job);
        notifier.notify(job);
      }
      return job;
    },
  };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
