import { Repeater, SlidingBuffer } from 'graphql-yoga';
import type { PredictionRecord } from '../store/prediction-repository.ts';

/** Topics and their payloads. */
export interface Events {
  'prediction.created': PredictionRecord;
}

export interface EventBus {
  /** Never blocks and never throws: each subscriber has its own bounded buffer. */
  publish<T extends keyof Events>(topic: T, payload: Events[T]): void;
  /**
   * Events published after the call, until the iterator is returned. A subscriber that
   * falls more than `bufferSize` events behind loses the oldest ones (a slow reader must
   * never slow the publisher or grow memory without bound).
   */
  subscribe<T extends keyof Events>(topic: T): AsyncIterableIterator<Events[T]>;
}

export interface EventBusOptions {
  /** Where events travel; swap in a distributed EventTarget to fan out across processes. @default new EventTarget() */
  eventTarget?: EventTarget;
  /** Events held per subscriber before the oldest are dropped. @default 1024 */
  bufferSize?: number;
}

export function createEventBus(options: EventBusOptions = {}): EventBus {
  const target = options.eventTarget ?? new EventTarget();
  const bufferSize = options.bufferSize ?? 1024;
  return {
    publish(topic, payload) {
      target.dispatchEvent(new CustomEvent(topic, { detail: payload }));
    },
    subscribe<T extends keyof Events>(topic: T) {
      return new Repeater<Events[T]>(async (push, stop) => {
        const listener = (event: Event) => void push((event as CustomEvent<Events[T]>).detail);
        target.addEventListener(topic, listener);
        await stop;
        target.removeEventListener(topic, listener);
      }, new SlidingBuffer(bufferSize));
    },
  };
}
