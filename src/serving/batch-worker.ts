import type { Logger } from 'pino';
import { ModelNotReadyError } from '../errors.ts';
import { interpretationOf } from '../inference/interpretation.ts';
import type { ModelRepository } from '../inference/repository.ts';
import type { EventBus } from '../pubsub/event-bus.ts';
import { ChunkConflictError, type BatchJobRecord, type BatchJobStore } from './batch-job-store.ts';
import type { Notifier } from './batch-notify.ts';
import { scoreRows } from './batch-scoring.ts';

export interface BatchWorkerOptions {
  /** Jobs run at once. @default 1 */
  concurrency?: number;
  /** Rows per chunk: scored together, committed in one transaction with the job's counters. @default 1000 */
  chunkRows?: number;
  /** How often the database is checked for QUEUED jobs besides `wake()` (in-process dispatch). @default 1000 */
  pollMs?: number;
}

/** How a job run ended: `ended` (final, or cancelled), or `interrupted` (stopping, or another worker holds it): hand it out again. */
export type RunOutcome = 'ended' | 'interrupted';

/**
 * Who decides which job runs where. In one process the worker takes jobs from the
 * database itself; across replicas a queue (jobs/bullmq-dispatcher.ts) hands each job
 * to one replica and gives it to another when that replica dies.
 */
export interface BatchDispatcher {
  /** Starts handing out job ids to `run`, at most `concurrency` at once. */
  start(run: (jobId: string) => Promise<RunOutcome>, concurrency: number): Promise<void>;
  /** A job was just queued. */
  queued(jobId: string): Promise<void>;
  /** Hands out no more jobs; resolves once the runs it started have returned. */
  stop(): Promise<void>;
}

/**
 * A job still UPLOADING this long after it was created was left by a process that died:
 * writing a million rows takes seconds, and with several replicas on one database a
 * younger one may be another replica's upload in progress.
 */
const STALE_UPLOAD_MS = 10 * 60 * 1000;

/** How long a job waits for its model version to finish LOADING before checking again. */
const LOADING_RETRY_MS = 500;

export type BatchWorker = ReturnType<typeof createBatchWorker>;

/**
 * Runs batch jobs. Jobs and rows live in the database, so the worker holds nothing a
 * crash could lose: a job left RUNNING is resumed from its `processed` counter (each
 * chunk's results and the counter commit together, so no row is done twice or skipped).
 *
 * Each chunk: read rows → score them (batch-scoring.ts) → commit → publish progress. A job
 * cancelled meanwhile stops there (its chunk in flight is not committed). Anything that is
 * not a row's fault fails the job with the reason in `error`.
 */
export function createBatchWorker(
  deps: { store: BatchJobStore; models: ModelRepository; bus: EventBus; notifier: Notifier; log: Logger; dispatcher?: BatchDispatcher },
  options: BatchWorkerOptions = {},
) {
  const { store, models, bus, notifier, log } = deps;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const chunkRows = Math.max(1, options.chunkRows ?? 1000);
  const dispatcher = deps.dispatcher ?? createLocalDispatcher(store, log, options.pollMs ?? 1000);
  let stopping = false;
  let starting: Promise<void> | undefined;
  let active = 0;
  let sweep: NodeJS.Timeout | undefined;

  async function dropStaleUploads(): Promise<void> {
    const dropped = await store.deleteUnfinishedUploads(new Date(Date.now() - STALE_UPLOAD_MS)).catch((error: unknown) => {
      log.error({ err: error }, 'could not delete stale batch uploads');
      return 0;
    });
    if (dropped > 0) log.warn({ jobs: dropped }, 'deleted batch jobs whose upload a stopped process never finished');
  }

  const ended = (job: BatchJobRecord) => {
    bus.publish('batch-job.progress', job);
    notifier.notify(job);
  };

  /** The job's version, waiting while it loads. */
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

  async function run(jobId: string): Promise<RunOutcome> {
    if (stopping) return 'interrupted';
    let job = await store.start(jobId);
    if (!job) return 'ended'; // final already (cancelled while queued), or gone
    active++;
    log.info({ job: job.id, model: job.modelName, version: job.version, total: job.total, from: job.processed }, 'batch job running');
    if (job.processed === 0) bus.publish('batch-job.progress', job);
    try {
      const version = await servedVersionOf(job);
      const interpretation = job.interpretation ?? interpretationOf(version.manifest, version.outputs[0]?.name);
      while (!stopping) {
        const rows = await store.readRows(job.id, job.processed, chunkRows);
        if (rows.length === 0) {
          const done = await store.finish(job.id, 'SUCCEEDED');
          if (done) ended(done);
          return 'ended';
        }
        let scored;
        try {
          scored = await scoreRows(await servedVersionOf(job), rows, job.format, interpretation);
          // A job's predictions belong to the key that submitted it.
          for (const row of scored) if (row.prediction) row.prediction.apiKeyId = job.apiKeyId;
        } catch (error) {
          // The version was swapped under the chunk: score it again on the one serving now.
          if (error instanceof ModelNotReadyError && error.details.status === 'CLOSED' && !stopping) continue;
          throw error;
        }
        const next = await store.commitChunk(job.id, scored);
        if (!next) return 'ended'; // cancelled: cancel() published the final state
        job = next;
        bus.publish('batch-job.progress', job);
      }
      return 'interrupted';
    } catch (error) {
      if (stopping && error instanceof ModelNotReadyError) return 'interrupted'; // shutting down: resumed later
      if (error instanceof ChunkConflictError) {
        log.warn({ job: job.id, err: error.message }, 'batch job is held by another worker; letting it go');
        return 'interrupted';
      }
      const reason = error instanceof Error ? error.message : String(error);
      log.error({ job: job.id, model: job.modelName, version: job.version, err: reason }, 'batch job failed');
      const failed = await store.finish(job.id, 'FAILED', reason).catch(() => undefined);
      if (failed) ended(failed);
      return 'ended';
    } finally {
      active--;
    }
  }

  return {
    /** Deletes half-written uploads, retries lost notifications, then takes jobs (resuming RUNNING ones first). */
    start(): Promise<void> {
      if (stopping) return Promise.resolve();
      starting ??= (async () => {
        await dropStaleUploads();
        sweep = setInterval(() => void dropStaleUploads(), STALE_UPLOAD_MS);
        sweep.unref();
        for (const job of await store.unnotified()) notifier.notify(job);
        if (!stopping) await dispatcher.start(run, concurrency);
      })();
      return starting;
    },
    /** A job was queued: take it now rather than at the next poll. */
    queued: (jobId: string) => dispatcher.queued(jobId),
    /** Jobs running now (diagnostics and shutdown logs). */
    get active() {
      return active;
    },
    /** Takes no more jobs and lets each running one commit its chunk in flight; they stay RUNNING and resume later. */
    async stop(): Promise<void> {
      stopping = true;
      await starting?.catch(() => undefined);
      clearInterval(sweep);
      notifier.close();
      await dispatcher.stop();
    },
  };
}

/**
 * Dispatch inside one process, from the database: resumes the jobs left RUNNING (this
 * process is the only worker), then claims QUEUED jobs oldest first, when told of one and
 * every `pollMs`.
 */
function createLocalDispatcher(store: BatchJobStore, log: Logger, pollMs: number): BatchDispatcher {
  const running = new Set<Promise<unknown>>();
  let run: ((jobId: string) => Promise<RunOutcome>) | undefined;
  let limit = 1;
  let stopped = false;
  let claiming = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  const launch = (jobId: string) => {
    const p = run!(jobId).finally(() => {
      running.delete(p);
      void claim();
    });
    running.add(p);
  };

  async function claim(): Promise<void> {
    if (!run || stopped) return;
    if (claiming) {
      again = true;
      return;
    }
    claiming = true;
    try {
      do {
        again = false;
        while (!stopped && running.size < limit) {
          const job = await store.claimNext();
          if (!job) break;
          launch(job.id);
        }
      } while (again && !stopped);
    } catch (error) {
      log.error({ err: error }, 'batch worker could not take a job');
    } finally {
      claiming = false;
    }
  }

  return {
    async start(runJob, concurrency) {
      run = runJob;
      limit = concurrency;
      for (const job of await store.running()) if (!stopped) launch(job.id);
      timer = setInterval(() => void claim(), pollMs);
      timer.unref();
      void claim();
    },
    async queued() {
      await claim();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (running.size > 0) await Promise.allSettled([...running]);
    },
  };
}
