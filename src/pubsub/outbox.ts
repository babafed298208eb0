/**
 * The transactional outbox of "commit, then publish" when events cross processes.
 *
 * A row is committed with its outbox flag set (the writer does that); once its event has
 * been published and the event target has confirmed it, the flag is cleared, in batches.
 * A process that dies between the commit and the clear leaves flagged rows behind; a
 * sweeper (in any surviving or restarted process) publishes every flagged row older than
 * `graceMs` and clears it. So no committed row's event is lost, and an event may arrive
 * twice after a crash (at least once): subscribers that care dedupe by id.
 *
 * In one process the outbox is not needed: the subscribers die with the publisher, and
 * a client reconnecting after a restart missed the events of the gap anyway.
 */
export interface OutboxDeps<T extends { id: string }> {
  /** Flagged rows created before `before`, oldest first, at most `limit`. */
  pending(before: Date, limit: number): Promise<T[]>;
  /** Clears the flag of these rows. */
  markPublished(ids: readonly string[]): Promise<void>;
  /** Publishes one row's event (never throws; the event target carries it). */
  publish(record: T): void;
  /** Resolves once every event published so far has reached the event target (Redis: a PING on the publishing connection). */
  flushed?(): Promise<unknown>;
  /** Resolves true when this process may sweep now (one sweeper at a time across processes). @default always */
  claimSweep?(): Promise<boolean>;
  log: { warn(obj: object, msg: string): void };
}

export interface OutboxOptions {
  /** A flagged row older than this is taken for a crashed process's: the sweeper publishes it. @default 10000 */
  graceMs?: number;
  /** How often the sweeper looks. @default graceMs / 2 */
  sweepIntervalMs?: number;
  /** Clears are batched over this long. @default 100 */
  clearDelayMs?: number;
  /** Rows per sweep query and per clear statement. @default 500 */
  batchSize?: number;
}

export type Outbox = ReturnType<typeof createOutbox>;

export function createOutbox<T extends { id: string }>(deps: OutboxDeps<T>, options: OutboxOptions = {}) {
  const graceMs = options.graceMs ?? 10_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? graceMs / 2;
  const clearDelayMs = options.clearDelayMs ?? 100;
  const batchSize = options.batchSize ?? 500;

  let toClear: string[] = [];
  let clearTimer: NodeJS.Timeout | undefined;
  let clearing: Promise<void> = Promise.resolve();
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<number> | undefined;
  /** Figures for tests and diagnostics. */
  const stats = { cleared: 0, swept: 0 };

  async function clear(ids: readonly string[]): Promise<void> {
    await deps.flushed?.();
    for (let start = 0; start < ids.length; start += batchSize) await deps.markPublished(ids.slice(start, start + batchSize));
    stats.cleared += ids.length;
  }

  function clearNow(): Promise<void> {
    clearTimeout(clearTimer);
    clearTimer = undefined;
    const ids = toClear;
    toClear = [];
    if (ids.length === 0) return clearing;
    // One clear at a time, in order; a failed one leaves its rows flagged for the sweeper (a duplicate event, not a lost one).
    clearing = clearing.then(() => clear(ids)).catch((error: unknown) => deps.log.warn({ err: error, rows: ids.length }, 'outbox: could not clear published rows; the sweeper will publish them again'));
    return clearing;
  }

  async function sweepOnce(): Promise<number> {
    if (deps.claimSweep && !(await deps.claimSweep())) return 0;
    let total = 0;
    for (;;) {
      const rows = await deps.pending(new Date(Date.now() - graceMs), batchSize);
      if (rows.length === 0) break;
      for (const row of rows) deps.publish(row);
      await clear(rows.map((r) => r.id));
      total += rows.length;
      if (rows.length < batchSize) break;
    }
    if (total > 0) {
      stats.swept += total;
      deps.log.warn({ events: total }, 'outbox: published the events of committed predictions whose process stopped before confirming them');
    }
    return total;
  }

  /** One sweep at a time. */
  function sweep(): Promise<number> {
    sweeping ??= sweepOnce().finally(() => (sweeping = undefined));
    return sweeping;
  }

  return {
    stats,
    /** The row's event is published: its flag is cleared with the next batch. */
    published(id: string): void {
      toClear.push(id);
      if (toClear.length >= batchSize) void clearNow();
      else clearTimer ??= setTimeout(() => void clearNow(), clearDelayMs);
    },
    /** Publishes and clears flagged rows older than the grace period; resolves with how many. One sweep at a time. */
    sweep,
    /** Sweeps every `sweepIntervalMs` (the first after one interval: start-up has enough to do). */
    start(): void {
      const run = () =>
        void sweep().catch((error: unknown) => deps.log.warn({ err: error }, 'outbox: sweep failed; next one in a moment'));
      sweepTimer = setInterval(run, sweepIntervalMs);
      sweepTimer.unref();
    },
    /** Stops sweeping and clears what is published (shutdown, before the database closes). */
    async close(): Promise<void> {
      clearInterval(sweepTimer);
      await sweeping?.catch(() => undefined);
      await clearNow();
    },
  };
}
