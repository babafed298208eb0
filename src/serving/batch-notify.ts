import type { Logger } from 'pino';
import { summaryOf, type BatchJobRecord, type BatchJobStore } from './batch-job-store.ts';

export interface NotifierOptions {
  /** Per attempt. @default 5000 */
  timeoutMs?: number;
  /** Attempts in all, the first included. @default 3 */
  attempts?: number;
  /** Wait before the second attempt; doubles after each. @default 1000 */
  backoffMs?: number;
}

export type Notifier = ReturnType<typeof createNotifier>;

/**
 * Tells a job's `notifyUrl` that the job ended: a POST of its JSON summary. Any 2xx
 * answer delivers it; a timeout, a network error or another status is retried with
 * backoff, and after the last attempt the failure is logged. Never throws: a notification
 * never fails its job. The job is marked notified either way, so a restart retries only
 * the notifications that a stopped process never finished.
 */
export function createNotifier(deps: { store: Pick<BatchJobStore, 'markNotified'>; log: Logger }, options: NotifierOptions = {}) {
  const { store, log } = deps;
  const timeoutMs = options.timeoutMs ?? 5000;
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 1000;
  const pending = new Set<Promise<void>>();
  let closed = false;

  async function deliver(job: BatchJobRecord & { notifyUrl: string }): Promise<void> {
    const body = JSON.stringify({ event: 'batchJob.finished', job: summaryOf(job) });
    for (let attempt = 1; attempt <= attempts && !closed; attempt++) {
      try {
        const response = await fetch(job.notifyUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'onnx-graphql-gateway' },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel();
        if (response.ok) {
          await store.markNotified(job.id);
          log.info({ job: job.id, url: job.notifyUrl, status: response.status, attempt }, 'batch job notification delivered');
          return;
        }
        log.warn({ job: job.id, url: job.notifyUrl, status: response.status, attempt }, 'batch job notification refused');
      } catch (error) {
        log.warn({ job: job.id, url: job.notifyUrl, attempt, err: (error as Error).message }, 'batch job notification failed');
      }
      if (attempt < attempts && !closed) await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
    }
    if (closed) return; // the next start retries it
    log.error({ job: job.id, url: job.notifyUrl, attempts }, 'batch job notification given up');
    await store.markNotified(job.id);
  }

  return {
    /** Starts delivery in the background (no-op without a notifyUrl). */
    notify(job: BatchJobRecord): void {
      if (job.notifyUrl === null || closed) return;
      const delivery = deliver(job as BatchJobRecord & { notifyUrl: string }).catch((error: unknown) => log.error({ job: job.id, err: error }, 'batch job notification crashed'));
      pending.add(delivery);
      void delivery.finally(() => pending.delete(delivery));
    },
    /** Resolves when every delivery started so far has ended (tests). */
    async idle(): Promise<void> {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    /** Stops retrying; unfinished deliveries are retried at the next start. */
    close(): void {
      closed = true;
    },
  };
}
