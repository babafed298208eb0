import { describe, expect, it } from 'vitest';
import { createEventBus } from '../src/pubsub/event-bus.ts';
import type { PredictionRecord } from '../src/store/prediction-repository.ts';

const record = (n: number) => ({ id: String(n) }) as PredictionRecord;

describe('event bus', () => {
  it('delivers to each subscriber in order, only what was published after it subscribed', async () => {
    const bus = createEventBus();
    bus.publish('prediction.created', record(0));
    const a = bus.subscribe('prediction.created');
    const b = bus.subscribe('prediction.created');
    const first = a.next(); // starts the subscription
    const firstB = b.next();
    for (let i = 1; i <= 3; i++) bus.publish('prediction.created', record(i));
    expect((await first).value.id).toBe('1');
    expect((await firstB).value.id).toBe('1');
    expect([(await a.next()).value.id, (await a.next()).value.id]).toEqual(['2', '3']);
    await a.return!();
    await b.return!();
  });

  it('never blocks the publisher: a subscriber that stops reading keeps only the newest events', async () => {
    const bus = createEventBus({ bufferSize: 100 });
    const slow = bus.subscribe('prediction.created');
    const started = slow.next();
    bus.publish('prediction.created', record(0));
    await started;
    const t = performance.now();
    for (let i = 1; i <= 10_000; i++) bus.publish('prediction.created', record(i));
    expect(performance.now() - t).toBeLessThan(1000);
    const received: string[] = [];
    for (let i = 0; i < 100; i++) received.push((await slow.next()).value.id);
    expect(received).toEqual(Array.from({ length: 100 }, (_, i) => String(9901 + i)));
    await slow.return!();
  });

  it('stops listening when the subscriber returns', async () => {
    const target = new EventTarget();
    let listeners = 0;
    const add = target.addEventListener.bind(target);
    const remove = target.removeEventListener.bind(target);
    target.addEventListener = (...args: Parameters<EventTarget['addEventListener']>) => (listeners++, add(...args));
    target.removeEventListener = (...args: Parameters<EventTarget['removeEventListener']>) => (listeners--, remove(...args));
    const bus = createEventBus({ eventTarget: target });
    const sub = bus.subscribe('prediction.created');
    const pending = sub.next();
    await new Promise((r) => setTimeout(r, 0));
    expect(listeners).toBe(1);
    await sub.return!();
    await pending;
    expect(listeners).toBe(0);
  });
});
