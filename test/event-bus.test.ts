import { describe, expect, it } from 'vitest';
import { approximateBytes, createEventBus } from '../src/pubsub/event-bus.ts';
import type { PredictionRecord } from '../src/serving/records.ts';

const record = (n: number, values = 0) =>
  ({ id: String(n), inputs: [{ name: 'x', datatype: 'FP32', shape: [values], data: new Array<number>(values).fill(n) }], outputs: [] }) as unknown as PredictionRecord;

describe('event bus', () => {
  it('delivers to each subscriber in order, only what was published after it subscribed', async () => {
    const bus = createEventBus();
    bus.publish('prediction.created', record(0));
    const a = bus.subscribe('prediction.created');
    const b = bus.subscribe('prediction.created');
    const first = a.next();
    const firstB = b.next();
    for (let i = 1; i <= 3; i++) bus.publish('prediction.created', record(i));
    expect((await first).value.id).toBe('1');
    expect((await firstB).value.id).toBe('1');
    expect([(await a.next()).value.id, (await a.next()).value.id]).toEqual(['2', '3']);
    await a.return!();
    await b.return!();
  });

  it('a subscriber that stops reading keeps only its newest `bufferSize` events; publishing never waits for it', async () => {
    const bus = createEventBus({ bufferSize: 100 });
    const slow = bus.subscribe('prediction.created');
    // publish() is synchronous: all 10,000 return while the subscriber reads nothing.
    for (let i = 1; i <= 10_000; i++) bus.publish('prediction.created', record(i));
    expect(bus.queues('prediction.created')).toEqual([expect.objectContaining({ bufferedEvents: 100, dropped: 9_900 })]);
    const received: string[] = [];
    for (let i = 0; i < 100; i++) received.push((await slow.next()).value.id);
    expect(received).toEqual(Array.from({ length: 100 }, (_, i) => String(9901 + i)));
    await slow.return!();
  });

  it('bounds a subscriber in bytes too: big events push out the oldest long before the event count is reached', async () => {
    const eventBytes = approximateBytes(record(0, 100_000)); // ~800 kB: 100,000 numbers
    const bus = createEventBus({ bufferSize: 1024, bufferBytes: 4 * eventBytes });
    const slow = bus.subscribe('prediction.created');
    for (let i = 1; i <= 50; i++) bus.publish('prediction.created', record(i, 100_000));
    const [stats] = bus.queues('prediction.created');
    expect(stats).toMatchObject({ bufferedEvents: 4, dropped: 46 });
    expect(stats!.peakBytes).toBeLessThanOrEqual(4 * eventBytes);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await slow.next()).value.id);
    expect(ids).toEqual(['47', '48', '49', '50']);
    await slow.return!();
  });

  it('keeps one listener per topic on the event target however many subscribe, and removes it when the last one returns', async () => {
    const target = new EventTarget();
    let listeners = 0;
    const add = target.addEventListener.bind(target);
    const remove = target.removeEventListener.bind(target);
    target.addEventListener = (...args: Parameters<EventTarget['addEventListener']>) => (listeners++, add(...args));
    target.removeEventListener = (...args: Parameters<EventTarget['removeEventListener']>) => (listeners--, remove(...args));
    const bus = createEventBus({ eventTarget: target });
    const subs = Array.from({ length: 1000 }, () => bus.subscribe('prediction.created'));
    const pending = subs.map((s) => s.next());
    expect(listeners).toBe(1);
    bus.publish('prediction.created', record(7));
    expect((await Promise.all(pending)).every((r) => r.value.id === '7')).toBe(true);
    await Promise.all(subs.slice(1).map((s) => s.return!()));
    expect(listeners).toBe(1);
    await subs[0]!.return!();
    expect(listeners).toBe(0);
    expect(bus.queues('prediction.created')).toEqual([]);
  });
});
