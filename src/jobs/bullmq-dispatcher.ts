import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BatchDispatcher } from '../serving/batch-worker.ts';

export interface BullmqDispatcherOptions {
  url: string;
  /** Key prefix in Redis (REDIS_PREFIX), so deployments sharing a Redis keep apart. */
  prefix: string;
  /**
   * How long a replica holds a job without renewing its lease (BullMQ's lockDuration; it
   * renews every half of it while the job runs). A replica that dies loses the job to
   * another one after about this long plus one stalled-check interval.
   */
  leaseMs: number;
  /** Ids of jobs the database says are QUEUED or RUNNING (the queue may have lost some). */
  pending: () => Promise<string[]>;
  log: Logger;
}

const QUEUE = 'batch-jobs';

/** A run that gave its job back (shutdown, or another replica holds it): BullMQ retries it, on any replica. */
class HandedBackError extends Error {
  override readonly name = 'HandedBackError';
}

/**
 * Batch jobs across replicas through BullMQ: a submit adds the job's id to one Redis
 * queue, and whichever replica's worker takes it runs it. While it runs, BullMQ renews the
 * replica's lease; when the replica dies, the lease runs out, BullMQ's stalled-job check
 * puts the job back, and another replica resumes it from its committed `processed` counter.
 * The database stays the record of every job and row: the queue only says who works on
 * what, so a job the queue never heard of (Redis lost, or down at submit) is added again
 * at start.
 */
export function createBullmqDispatcher(options: BullmqDispatcherOptions): BatchDispatcher {
  const { prefix, log } = options;
  // BullMQ's blocking commands need ioredis to retry forever.
  const queueConnection = new Redis(options.url, { maxRetriesPerRequest: null });
  const queue = new Queue(QUEUE, { connection: queueConnection, prefix });
  let worker: Worker | undefined;
  let workerConnection: Redis | undefined;

  const enqueue = async (jobId: string) => {
    // The job's id is BullMQ's id: adding a job already waiting or running is a no-op.
    await queue.add(
      'run',
      { jobId },
      { jobId, attempts: Number.MAX_SAFE_INTEGER, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: true, removeOnFail: true },
    );
  };

  return {
    async start(run, concurrency) {
      workerConnection = new Redis(options.url, { maxRetriesPerRequest: null });
      worker = new Worker<{ jobId: string }>(
        QUEUE,
        async (job) => {
          if ((await run(job.data.jobId)) === 'interrupted') throw new HandedBackError(`batch job ${job.data.jobId} handed back to the queue`);
        },
        {
          connection: workerConnection,
          prefix,
          concurrency,
          lockDuration: options.leaseMs,
          stalledInterval: options.leaseMs,
          // A job stalls only when its replica died; it must always be taken over, never dropped.
          maxStalledCount: Number.MAX_SAFE_INTEGER,
        },
      );
      worker.on('error', (error) => log.error({ err: error }, 'batch queue worker error'));
      worker.on('failed', (job, error) => {
        if (!(error instanceof HandedBackError)) log.error({ job: (job?.data as { jobId?: string } | undefined)?.jobId, err: error }, 'batch queue run failed');
      });
      for (const id of await options.pending()) await enqueue(id);
    },
    queued: enqueue,
    async stop() {
      await worker?.close();
      await queue.close();
      await Promise.allSettled([queueConnection.quit(), workerConnection?.quit()]);
    },
  };
}
