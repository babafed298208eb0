import type { Logger } from 'pino';
import { ModelNotReadyError } from '../errors.ts';
import { interpretationOf } from '../inference/interpretation.ts';
import type { ModelRepository } from '../inference/repository.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import type { BatchJobRecord, BatchJobStore } from './batch-job-store.ts';
import type { Notifier } from './batch-notify.ts';
import { scoreRows } from './batch-scoring.ts';

export interface BatchWorkerOptions {
  /** Jobs run at once. @default 1 */
  concurrency?: number;
  /** Rows per chunk: scored together, committed in one transaction with the job's counters. @default 1000 */
  chunkRows?: number;
  /** How often the database is checked for QUEUED jobs besides `wake()`. @default 1000 */
  pollMs?: number;
}

/** How long a job waits for its model version to finish LOADING before checking again. */
const LOADING_RETRY_MS = 500;

export type BatchWorker = ReturnType<typeof createBatchWorker>;

/**
 * Runs batch jobs inside the server process. Jobs and rows live in the database, so the
 * worker holds nothing that a crash could lose: at start it resumes the jobs left RUNNING
 * from their `processed` counter (each chunk's results and the counter commit together,
 * so no row is done twice or skipped), then takes QUEUED jobs, oldest first.
 *
 * Each chunk: read rows → score them (batch-scoring.ts) → commit → publish progress. A job
 * cancelled meanwhile stops there (its chunk in flight is not committed). Anything that is
 * not a row's fault fails the job with the reason in `error`.
 */
export function createBatchWorker(
  deps: { store: BatchJobStore; models: ModelRepository; bus: EventBus; notifier: Notifier; log: Logger },
  options: BatchWorkerOptions = {},
) {
  const { store, models, bus, notifier, log } = deps;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const chunkRows = Math.max(1, options.chunkRows ?? 1000);
  const active = new Map<string, Promise<void>>();
  let started = false;
  let stopping = false;
  let claiming = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let starting: Promise<void> | undefined;

  const ended = (job: BatchJobRecord) => {
    bus.publish('batch-job.progress', job);
    notifier.notify(job);
  };

  /** The job's version, waiting while it loads; undefined when the worker stops meanwhile. */
  async function servedVersionOf(job: BatchJobRecord) {
    for (;;) {
      try {
        return models.resolve(job.modelName, job.version);
      } catch (error) {
        if (!(error instanceof ModelNotReadyError) || error.details.status !== 'LOADING' || stopping) throw error;
        await new Promise((resolve) => setTimeout(resolve, LOADING_RETRY_MS));
      }
    }
  }

  async function run(job: BatchJobRecord): Promise<void> {
    try {
      const version = await servedVersionOf(job);
      const interpretation = job.interpretation ?? interpretationOf(version.manifest, version.outputs[0]?.name);
      while (!stopping) {
        const rows = await store.readRows(job.id, job.processed, chunkRows);
        if (rows.length === 0) {
          const done = await store.finish(job.id, 'SUCCEEDED');
          if (done) ended(done);
          return;
        }
        let scored;
        try {
          scored = await scoreRows(await servedVersionOf(job), rows, job.format, interpretation);
        } catch (error) {
          // The version was swapped under the chunk: score it again on the one serving now.
          if (error instanceof ModelNotReadyError && error.details.status === 'CLOSED' && !stopping) continue;
          throw error;
        }
        const next = await store.commitChunk(job.id, scored);
        if (!next) return; // cancelled: cancel() published the final state
        job = next;
        bus.publish('batch-job.progress', job);
      }
    } catch (error) {
      if (stopping && error instanceof ModelNotReadyError) return; // shutting down: resumed at the next start
      const reason = error instanceof Error ? error.message : String(error);
      log.error({ job: job.id, model: job.modelName, version: job.version, err: reason }, 'batch job failed');
      const failed = await store.finish(job.id, 'FAILED', reason).catch(() => undefined);
      if (failed) ended(failed);
    }
  }

  function launch(job: BatchJobRecord): void {
    log.info({ job: job.id, model: job.modelName, version: job.version, total: job.total, from: job.processed }, 'batch job running');
    const running = run(job).finally(() => {
      active.delete(job.id);
      wake();
    });
    active.set(job.id, running);
  }

  /** Takes QUEUED jobs while there is room. */
  async function claim(): Promise<void> {
    if (claiming) {
      again = true;
      return;
    }
    claiming = true;
    try {
      do {
        again = false;
        while (!stopping && active.size < concurrency) {
          const job = await store.claimNext();
          if (!job) break;
          bus.publish('batch-job.progress', job);
          launch(job);
        }
      } while (again && !stopping);
    } catch (error) {
      log.error({ err: error }, 'batch worker could not take a job');
    } finally {
      claiming = false;
    }
  }

  function wake(): void {
    if (started && !stopping) void claim();
  }

  return {
    /** Deletes half-written uploads, resumes RUNNING jobs, retries lost notifications, then takes QUEUED jobs. */
    start(): Promise<void> {
      if (stopping) return Promise.resolve();
      starting ??= (async () => {
        started = true;
        const dropped = await store.deleteUnfinishedUploads();
        if (dropped > 0) log.warn({ jobs: dropped }, 'deleted batch jobs whose upload a stopped process never finished');
        for (const job of await store.running()) if (!stopping) launch(job);
        for (const job of await store.unnotified()) notifier.notify(job);
        timer = setInterval(wake, options.pollMs ?? 1000);
        timer.unref();
        wake();
      })();
      return starting;
    },
    /** A job was queued: take it now rather than at the next poll. */
    wake,
    /** Jobs running now (diagnostics and shutdown logs). */
    get active() {
      return active.size;
    },
    /** Takes no more jobs and lets each running one commit its chunk in flight; they stay RUNNING and resume at the next start. */
    async stop(): Promise<void> {
      stopping = true;
      await starting?.catch(() => undefined);
      clearInterval(timer);
      notifier.close();
      await Promise.allSettled([...active.values()]);
    },
  };
}
