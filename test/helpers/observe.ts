import type { GenerationEvent, GenerationService } from '../../src/serving/generate.ts';
import type { EventBus, Events } from '../../src/pubsub/event-bus.ts';

/**
 * Watches the subscriptions made to `bus` from now on. `listening(n)` resolves once n of
 * them have been pulled (their first `next()`): by then each is listening, whether the
 * bus registers a subscriber when it subscribes or when it is first pulled, and cannot
 * miss an event. Call `restore()` when done.
 */
export function watchSubscribers(bus: EventBus): { listening(count: number): Promise<void>; restore(): void } {
  const subscribe = bus.subscribe;
  let listening = 0;
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  bus.subscribe = ((topic: keyof Events) => {
    const iterator = subscribe.call(bus, topic);
    const next = iterator.next.bind(iterator);
    let pulled = false;
    iterator.next = (...args: [] | [unknown]) => {
      const result = next(...args);
      if (!pulled) {
        pulled = true;
        listening++;
        for (const w of waiters.filter((w) => listening >= w.count)) w.resolve();
      }
      return result;
    };
    return iterator;
  }) as EventBus['subscribe'];
  return {
    listening: (count) => (listening >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    restore: () => void (bus.subscribe = subscribe),
  };
}

/** Calls `listener` synchronously at each publish, before any subscriber is handed the event. Returns the undo. */
export function onPublish(bus: EventBus, listener: <T extends keyof Events>(topic: T, payload: Events[T]) => void): () => void {
  const publish = bus.publish;
  bus.publish = (topic, payload) => {
    listener(topic, payload);
    publish.call(bus, topic, payload);
  };
  return () => void (bus.publish = publish);
}

/** What the server did with one generation stream, as its transport drove it. */
export interface GenerationProbe {
  /** Token events the stream handed to its transport. */
  tokens: number;
  /** `runs()` when the transport returned the stream (the client went away); undefined if it never did. */
  runsAtReturn?: number;
  /** Settles when the stream gives its slot back: returned, finished or failed. */
  released: Promise<void>;
}

/** Records every generation stream `service` opens from now on, in order. Call `restore()` when done. */
export function watchGenerations(service: GenerationService, runs: () => number): { streams: GenerationProbe[]; restore(): void } {
  const stream = service.stream;
  const streams: GenerationProbe[] = [];
  service.stream = (input) => {
    const iterator = stream.call(service, input);
    let release!: () => void;
    const probe: GenerationProbe = { tokens: 0, released: new Promise<void>((resolve) => (release = resolve)) };
    streams.push(probe);
    const { next, return: finish } = iterator;
    iterator.next = async () => {
      try {
        const step: IteratorResult<GenerationEvent> = await next.call(iterator);
        if (step.done) release();
        else if (!step.value.done) probe.tokens++;
        return step;
      } catch (error) {
        release();
        throw error;
      }
    };
    iterator.return = async (value?: unknown) => {
      probe.runsAtReturn = runs();
      const result = await finish!.call(iterator, value);
      release();
      return result;
    };
    return iterator;
  };
  return { streams, restore: () => void (service.stream = stream) };
}
