import { jobOf, runJobs, type BatchTarget, type Job } from './batcher.ts';
import type { TensorData } from './types.ts';

/**
 * How long the bulk lane waits for online work to stop before it dispatches anyway, in ms,
 * counted from the moment its oldest request reached the head of the queue (queued into an
 * empty lane, or the previous bulk dispatch ended). A saturating online load thus slows
 * batch jobs to one bulk dispatch per this wait but never starves them.
 */
export const BULK_MAX_WAIT_MS = 100;

/** The two kinds of work of one version: online requests come first, bulk ones fill the gaps. */
export interface BulkLane {
  /** Runs online work, counted from call to settle: no bulk dispatch starts while any is counted. */
  online<T>(work: () => Promise<T>): Promise<T>;
  /** Queues one request's tensors behind online work; answers with exactly its own outputs. */
  bulk(tensors: readonly TensorData[]): Promise<TensorData[]>;
}

interface BulkRequest {
  tensors: readonly TensorData[];
  /** The request as a stackable job; undefined when stacking is off or its inputs disagree on rows. */
  job: Job | undefined;
  resolve(outputs: TensorData[]): void;
  reject(error: Error): void;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The low-priority lane of one version. Bulk requests wait in their own queue and are
 * dispatched one dispatch at a time, only while no online work is counted or once the lane
 * has waited BULK_MAX_WAIT_MS. Each dispatch first yields a full event-loop turn, so online
 * requests that arrived on the socket meanwhile get in first. A dispatch takes the oldest
 * requests up to `maxBatchSize` rows and stacks them with the online batcher's code (same
 * guarantees: own rows to each, a failed stacked run retried request by request); with
 * batching off it runs one request alone.
 */
export function createBulkLane(
  target: BatchTarget,
  options: {
    /** Rows per bulk run at most, as the version's batching decides; 0 or 1: each request runs alone. */
    maxBatchSize: number;
  },
): BulkLane {
  const queue: BulkRequest[] = [];
  let online = 0;
  let dispatching = false;
  /** The head of the queue has waited out BULK_MAX_WAIT_MS: online work no longer holds it back. */
  let overdue = false;
  let overdueTimer: NodeJS.Timeout | undefined;

  const mayDispatch = () => online === 0 || overdue;

  function wake(): void {
    if (dispatching || queue.length === 0) return;
    if (mayDispatch()) void dispatch();
  }

  function startWaiting(): void {
    clearTimeout(overdueTimer);
    overdueTimer = setTimeout(() => {
      overdueTimer = undefined;
      overdue = true;
      wake();
    }, BULK_MAX_WAIT_MS);
  }

  async function dispatch(): Promise<void> {
    dispatching = true;
    await nextTurn();
    if (!mayDispatch()) {
      dispatching = false;
      return;
    }
    clearTimeout(overdueTimer);
    overdueTimer = undefined;
    overdue = false;
    try {
      await runTaken(take());
    } finally {
      dispatching = false;
      if (queue.length > 0) startWaiting();
      wake();
    }
  }

  /** The oldest requests that fit in one run: a lone unstackable one, or stackable ones up to maxBatchSize rows. */
  function take(): BulkRequest[] {
    const taken = takeOldest();
    target.stats.bulkWaiting = queue.length;
    return taken;
  }

  function takeOldest(): BulkRequest[] {
    if (!queue[0]!.job) return queue.splice(0, 1);
    let rows = 0;
    let count = 0;
    for (const { job } of queue) {
      if (!job || (count > 0 && rows + job.rows > options.maxBatchSize)) break;
      rows += job.rows;
      count++;
    }
    return queue.splice(0, count);
  }

  /** Settles every taken request, whatever happens. */
  async function runTaken(taken: BulkRequest[]): Promise<void> {
    try {
      const jobs = taken.map((request) => request.job);
      if (!jobs.every((job) => job !== undefined)) {
        taken[0]!.resolve(await target.runAlone(taken[0]!.tensors));
        return;
      }
      const results = await runJobs(target, jobs, options.maxBatchSize);
      results.forEach((result, i) => (result instanceof Error ? taken[i]!.reject(result) : taken[i]!.resolve(result)));
    } catch (error) {
      for (const request of taken) request.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  return {
    async online(work) {
      online++;
      try {
        return await work();
      } finally {
        if (--online === 0) wake();
      }
    },
    bulk(tensors) {
      return new Promise<TensorData[]>((resolve, reject) => {
        const job = options.maxBatchSize > 1 ? jobOf(tensors) : undefined;
        queue.push({ tensors, job, resolve, reject });
        target.stats.bulkWaiting = queue.length;
        if (queue.length === 1 && !dispatching) startWaiting();
        wake();
      });
    },
  };
}
