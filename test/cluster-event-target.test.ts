import type { Cluster } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createEventBus } from '../src/pubsub/event-bus.ts';
import { openClusterEventTarget, relayClusterEvents, type PrimaryChannel } from '../src/pubsub/cluster-event-target.ts';
import type { PredictionRecord } from '../src/serving/records.ts';

/** IPC as node:cluster does it: asynchronous, in order, JSON on the wire. */
const overIpc = (deliver: (message: unknown) => void) => (message: unknown) => setImmediate(() => deliver(JSON.parse(JSON.stringify(message))));

/** A primary and `n` workers joined by in-memory channels; `relay: false` leaves the primary deaf. */
function fakeCluster(n: number, { relay = true } = {}) {
  const workers: Record<number, unknown> = {};
  const primary = Object.assign(new EventEmitter(), { workers });
  const channels: PrimaryChannel[] = [];
  for (let id = 1; id <= n; id++) {
    const inbox = new EventEmitter();
    const worker = { isConnected: () => true, send: (message: unknown) => (overIpc((m) => inbox.emit('message', m))(message), true) };
    workers[id] = worker;
    channels.push({
      send: (message) => (overIpc((m) => primary.emit('message', worker, m))(message), true),
      on: (event, listener) => inbox.on(event, listener),
    });
  }
  if (relay) relayClusterEvents(primary as unknown as Cluster);
  return channels;
}

const prediction = (id: string): PredictionRecord => ({
  id,
  modelName: 'iris',
  version: 1,
  createdAt: new Date('2026-12-02T10:00:00.123Z'),
  latencyMs: 0.5,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }],
  outputs: [],
  generation: null,
  interpretation: null,
});

async function take<T>(iterator: AsyncIterableIterator<T>, count: number): Promise<T[]> {
  const taken: T[] = [];
  while (taken.length < count) taken.push((await iterator.next()).value as T);
  return taken;
}

describe('the in-machine event channel (cluster workers without Redis)', () => {
  it('an event published on any worker reaches subscribers on every worker, its own included, in one order, with dates revived', async () => {
    const buses = fakeCluster(3).map((channel) => createEventBus({ eventTarget: openClusterEventTarget(channel) }));
    const subscribers = buses.map((bus) => bus.subscribe('prediction.created'));
    buses[0]!.publish('prediction.created', prediction('a'));
    buses[1]!.publish('prediction.created', prediction('b'));
    buses[2]!.publish('prediction.created', prediction('c'));
    buses[0]!.publish('prediction.created', prediction('d'));
    const heard = await Promise.all(subscribers.map((s) => take(s, 4)));
    for (const events of heard) expect(events).toEqual(['a', 'b', 'c', 'd'].map(prediction));
    expect(heard[2]![0]!.createdAt).toBeInstanceOf(Date);
  });

  it('delivers nothing locally by itself: without the primary relaying, a worker does not even hear its own events', async () => {
    const [channel] = fakeCluster(1, { relay: false });
    const target = openClusterEventTarget(channel);
    const heard: unknown[] = [];
    target.addEventListener('prediction.created', (event) => heard.push((event as CustomEvent).detail));
    target.dispatchEvent(new CustomEvent('prediction.created', { detail: prediction('a') }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard).toEqual([]);
  });

  it('listeners are per topic and can be removed', async () => {
    const [channel] = fakeCluster(1);
    const target = openClusterEventTarget(channel);
    const heard: string[] = [];
    const onPrediction = (event: Event) => heard.push(`prediction ${(event as CustomEvent<PredictionRecord>).detail.id}`);
    target.addEventListener('prediction.created', onPrediction);
    target.addEventListener('batch-job.progress', (event) => heard.push(`job ${(event as CustomEvent<{ id: string }>).detail.id}`));
    target.dispatchEvent(new CustomEvent('prediction.created', { detail: prediction('a') }));
    target.dispatchEvent(new CustomEvent('batch-job.progress', { detail: { id: 'j' } }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    target.removeEventListener('prediction.created', onPrediction);
    target.dispatchEvent(new CustomEvent('prediction.created', { detail: prediction('b') }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard).toEqual(['prediction a', 'job j']);
  });
});
