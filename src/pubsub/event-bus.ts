import type { ModelEvent } from '../inference/model-events.ts';
import type { DriftAlert } from '../monitoring/drift-watch.ts';
import type { BatchJobRecord } from '../serving/batch-job-store.ts';
import type { PredictionRecord } from '../serving/records.ts';
import { createSubscriberQueue, type SubscriberQueueStats } from './subscriber-queue.ts';

/** Topics and their payloads. */
export interface Events {
  'prediction.created': PredictionRecord;
  /** A batch job changed: queued, started, a chunk committed, or ended. */
  'batch-job.progress': BatchJobRecord;
  /** A model version changed state, or a model's traffic changed (inference/model-events.ts). */
  'model.event': ModelEvent;
  /** A feature of a model version drifted past the PSI threshold (monitoring/drift-watch.ts). */
  'drift.alert': DriftAlert;
}

export interface EventBus {
  /** Never blocks and never throws: each subscriber has its own bounded queue. */
  publish<T extends keyof Events>(topic: T, payload: Events[T]): void;
  /**
   * Events published after the call, until the iterator is returned. A subscriber that
   * falls more than `bufferSize` events or `bufferBytes` bytes behind loses the oldest
   * ones (a slow reader must never slow the publisher or grow memory without bound).
   */
  subscribe<T extends keyof Events>(topic: T): AsyncIterableIterator<Events[T]>;
  /** Every open subscriber's queue, per topic (diagnostics and tests). */
  queues<T extends keyof Events>(topic: T): SubscriberQueueStats[];
  /**
   * Shutdown: every subscriber gets what is queued for it, then the end (its subscription
   * completes: `complete` over WebSocket, `event: complete` over SSE); a later subscribe
   * ends at once. Publishing still works (rows committed while draining are still announced to other processes).
   */
  close(): void;
}

export interface EventBusOptions {
  /** Where events travel; swap in a distributed EventTarget to fan out across processes. @default new EventTarget() */
  eventTarget?: EventTarget;
  /** Put before each topic name on the event target (Redis channel names): keeps deployments or test runs sharing one Redis apart. @default '' */
  topicPrefix?: string;
  /** Events held per subscriber before the oldest are dropped. @default 1024 */
  bufferSize?: number;
  /** Approximate bytes held per subscriber before the oldest are dropped. @default 16 MiB */
  bufferBytes?: number;
}

/** Rough in-memory size of a prediction: its numbers dominate (8 bytes each in a JS array). */
export function approximateBytes(record: PredictionRecord): number {
  let bytes = 256;
  for (const t of record.inputs) bytes += 64 + t.data.length * 8;
  for (const t of record.outputs) bytes += 64 + t.data.length * 8;
  if (record.generation) bytes += 2 * (record.generation.prompt.length + record.generation.text.length);
  return bytes;
}

const SIZE_OF: { [T in keyof Events]: (payload: Events[T]) => number } = {
  'prediction.created': approximateBytes,
  'batch-job.progress': () => 512,
  'model.event': () => 512,
  'drift.alert': () => 256,
};

/** A subscriber's queue; a topic's set holds queues of that topic's payload only. */
type Queue = ReturnType<typeof createSubscriberQueue<Events[keyof Events]>>;

/**
 * In-process fan-out: the event target carries each event once, to one listener per
 * topic (so a thousand subscribers are one listener, not a thousand, on a distributed
 * target), and that listener hands it to every subscriber's own queue.
 */
export function createEventBus(options: EventBusOptions = {}): EventBus {
  const target = options.eventTarget ?? new EventTarget();
  const maxEvents = options.bufferSize ?? 1024;
  const maxBytes = options.bufferBytes ?? 16 * 1024 * 1024;
  const prefix = options.topicPrefix ?? '';
  const subscribers = new Map<keyof Events, Set<Queue>>();
  const listeners = new Map<keyof Events, (event: Event) => void>();
  let closed = false;

  return {
    publish(topic, payload) {
      target.dispatchEvent(new CustomEvent(prefix + topic, { detail: payload }));
    },
    subscribe<T extends keyof Events>(topic: T) {
      let set = subscribers.get(topic);
      if (!set) {
        const fanOut = new Set<Queue>();
        const listener = (event: Event) => {
          for (const queue of fanOut) queue.push((event as CustomEvent<Events[T]>).detail);
        };
        subscribers.set(topic, (set = fanOut));
        listeners.set(topic, listener);
        target.addEventListener(prefix + topic, listener);
      }
      const queue = createSubscriberQueue<Events[T]>({
        maxEvents,
        maxBytes,
        sizeOf: SIZE_OF[topic],
        onReturn: () => {
          set.delete(queue);
          if (set.size === 0) {
            target.removeEventListener(prefix + topic, listeners.get(topic)!);
            subscribers.delete(topic);
            listeners.delete(topic);
          }
        },
      });
      set.add(queue);
      if (closed) queue.end();
      return queue.iterator;
    },
    close() {
      closed = true;
      for (const set of subscribers.values()) for (const queue of set) queue.end();
    },
    queues(topic) {
      return [...(subscribers.get(topic) ?? [])].map((q) => q.stats);
    },
  };
}
