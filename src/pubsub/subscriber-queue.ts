/** Limits of one subscriber's queue. */
export interface SubscriberQueueOptions<T> {
  /** Events held before the oldest are dropped. */
  maxEvents: number;
  /** Approximate bytes held before the oldest are dropped (the newest event is always kept). */
  maxBytes: number;
  /** Approximate size of an event in bytes. */
  sizeOf: (event: T) => number;
  /** Called once when the consumer returns (unsubscribes). */
  onReturn?: () => void;
}

/** What a queue holds and has lost; read by tests and diagnostics. */
export interface SubscriberQueueStats {
  bufferedEvents: number;
  bufferedBytes: number;
  /** Events dropped because the consumer fell behind. */
  dropped: number;
  /** The most bytes ever held at once. */
  peakBytes: number;
}

/**
 * A drop-oldest queue between a publisher that must never wait and one consumer that
 * may be slow (a stalled network subscriber). Bounded in events and in bytes: full
 * tensors can be megabytes each, so a count alone does not bound memory.
 * (Repeater's SlidingBuffer counts only events, and sees promises, not payloads.)
 */
export function createSubscriberQueue<T>(options: SubscriberQueueOptions<T>) {
  const events: Array<{ value: T; bytes: number }> = [];
  const stats: SubscriberQueueStats = { bufferedEvents: 0, bufferedBytes: 0, dropped: 0, peakBytes: 0 };
  let waiting: ((result: IteratorResult<T, undefined>) => void) | undefined;
  let done = false;
  /** The producer has ended: the consumer gets what is queued, then the end. */
  let ended = false;

  const take = (): T => {
    const head = events.shift()!;
    stats.bufferedEvents--;
    stats.bufferedBytes -= head.bytes;
    return head.value;
  };

  const iterator: AsyncIterableIterator<T, undefined> = {
    next() {
      if (events.length > 0) return Promise.resolve({ done: false, value: take() });
      if (done || ended) return Promise.resolve({ done: true, value: undefined });
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      if (!done) {
        done = true;
        events.length = 0;
        stats.bufferedEvents = 0;
        stats.bufferedBytes = 0;
        options.onReturn?.();
        waiting?.({ done: true, value: undefined });
        waiting = undefined;
      }
      return Promise.resolve({ done: true, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };

  return {
    iterator,
    stats,
    /** Hands the event to a waiting consumer, or queues it, dropping the oldest over the limits. */
    push(value: T): void {
      if (done || ended) return;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ done: false, value });
        return;
      }
      const bytes = options.sizeOf(value);
      events.push({ value, bytes });
      stats.bufferedEvents++;
      stats.bufferedBytes += bytes;
      while (events.length > 1 && (events.length > options.maxEvents || stats.bufferedBytes > options.maxBytes)) {
        take();
        stats.dropped++;
      }
      stats.peakBytes = Math.max(stats.peakBytes, stats.bufferedBytes);
    },
    /** No more events: the consumer reads what is queued, then its iterator ends. */
    end(): void {
      ended = true;
      if (waiting && events.length === 0) {
        waiting({ done: true, value: undefined });
        waiting = undefined;
      }
    },
  };
}
