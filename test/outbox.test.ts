import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutbox } from '../src/pubsub/outbox.ts';
import { newId } from '../src/serving/ids.ts';
import type { PredictionRecord } from '../src/serving/records.ts';
import { openStore } from '../src/store/database.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { waitFor } from './helpers/process.ts';
import { REDIS_URL, redisAnswers, redisSubscribed } from './helpers/redis.ts';

const PREDICT = `mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id label } }`;
const silent = { warn: () => undefined };

/** An in-memory table of flagged rows, the way the history's eventPending column behaves. */
function fakeTable() {
  const rows = new Map<string, { id: string; createdAt: Date; pending: boolean }>();
  return {
    rows,
    add: (id: string, ageMs: number) => rows.set(id, { id, createdAt: new Date(Date.now() - ageMs), pending: true }),
    pending: async (before: Date, limit: number) =>
      [...rows.values()]
        .filter((r) => r.pending && r.createdAt < before)
        .sort((a, b) => +a.createdAt - +b.createdAt)
        .slice(0, limit),
    markPublished: async (ids: readonly string[]) => {
      for (const id of ids) rows.get(id)!.pending = false;
    },
  };
}

describe('the outbox', () => {
  it('clears a published row only after the event target confirms, in one batch', async () => {
    const table = fakeTable();
    for (const id of ['a', 'b', 'c']) table.add(id, 0);
    let confirm!: () => void;
    const calls: string[][] = [];
    const outbox = createOutbox(
      {
        pending: table.pending,
        markPublished: async (ids) => {
          calls.push([...ids]);
          await table.markPublished(ids);
        },
        publish: () => undefined,
        flushed: () => new Promise<void>((resolve) => (confirm = resolve)),
        log: silent,
      },
      { clearDelayMs: 10 },
    );
    for (const id of ['a', 'b', 'c']) outbox.published(id);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual([]); // not confirmed yet: still flagged
    confirm();
    await waitFor(async () => calls.length === 1);
    expect(calls).toEqual([['a', 'b', 'c']]);
    expect([...table.rows.values()].every((r) => !r.pending)).toBe(true);
  });

  it('sweeps flagged rows older than the grace period, oldest first, and leaves younger ones to their own process', async () => {
    const table = fakeTable();
    table.add('old-2', 60_000);
    table.add('old-1', 120_000);
    table.add('young', 100);
    const published: string[] = [];
    const outbox = createOutbox({ ...table, publish: (r) => published.push(r.id), log: silent }, { graceMs: 10_000, batchSize: 1 });
    expect(await outbox.sweep()).toBe(2);
    expect(published).toEqual(['old-1', 'old-2']);
    expect(table.rows.get('young')!.pending).toBe(true);
    expect(await outbox.sweep()).toBe(0); // cleared: not published twice
  });

  it('does not sweep when another process holds the sweep', async () => {
    const table = fakeTable();
    table.add('old', 60_000);
    const published: string[] = [];
    const outbox = createOutbox({ ...table, publish: (r) => published.push(r.id), claimSweep: async () => false, log: silent });
    expect(await outbox.sweep()).toBe(0);
    expect(published).toEqual([]);
  });

  it('leaves a row flagged when its clear fails, so the sweeper publishes it again (at least once)', async () => {
    const table = fakeTable();
    table.add('x', 60_000);
    const outbox = createOutbox(
      { ...table, markPublished: () => Promise.reject(new Error('database gone')), publish: () => undefined, log: silent },
      { clearDelayMs: 1 },
    );
    outbox.published('x');
    await outbox.close();
    expect(table.rows.get('x')!.pending).toBe(true);
  });
});

const available = await redisAnswers();
if (!available) console.warn(`outbox.test.ts: replica tests SKIPPED, no Redis at ${REDIS_URL}`);

describe.skipIf(!available)('the outbox across replicas (REDIS_URL)', () => {
  let gateway: TestGateway;
  const prefix = `test-${randomUUID()}:`;
  const subscribed = () => redisSubscribed(`${prefix}prediction.created`, 1);
  beforeAll(async () => {
    gateway = await startGateway({ env: { REDIS_URL, REDIS_PREFIX: prefix, OUTBOX_GRACE_MS: '2000' } });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  const pendingRows = () => gateway.query<{ id: string }>(`SELECT "id" FROM "Prediction" WHERE "eventPending"`);

  it('announces a prediction once and clears its flag: nothing is left for the sweeper', async () => {
    const client = wsClient(gateway.url);
    const sub = subscribeWs(client, `subscription { predictionCreated { id } }`);
    await subscribed();
    const made = (await gateway.gql(PREDICT, { f: [5.1, 3.5, 1.4, 0.2] })).body.data.predict;
    await sub.waitFor(1);
    await waitFor(async () => (await pendingRows()).length === 0);
    await gateway.app.outbox!.sweep();
    await new Promise((r) => setTimeout(r, 300));
    expect(sub.events.map((e) => e.data!.predictionCreated.id)).toEqual([made.id]);
    sub.unsubscribe();
  });

  it('publishes the event of a prediction another replica committed but died before announcing, with its fields', async () => {
    // What a replica killed between its commit and its publish leaves: the row, flagged.
    const made = (await gateway.gql(PREDICT, { f: [6.7, 3.0, 5.2, 2.3] })).body.data.predict;
    const deadReplica = await openStore(gateway.databaseUrl, { eventPending: true });
    const reads = createPredictionRepository(deadReplica.db, { writer: deadReplica.history });
    const [original] = (await reads.findByIds([made.id])) as PredictionRecord[];
    const orphan: PredictionRecord = { ...original!, id: newId(), createdAt: new Date(Date.now() - 60_000) };
    const client = wsClient(gateway.url);
    const sub = subscribeWs(client, `subscription { predictionCreated { id label createdAt } }`);
    await subscribed();
    await deadReplica.history.insert([orphan]);
    await deadReplica.close();
    await sub.waitFor(1); // the sweeper (every OUTBOX_GRACE_MS / 2) found it
    expect(sub.events[0]!.data!.predictionCreated).toEqual({ id: orphan.id, label: 'virginica', createdAt: orphan.createdAt.toISOString() });
    await waitFor(async () => (await pendingRows()).length === 0);
    await new Promise((r) => setTimeout(r, 1500)); // more sweeps: it is not published again
    expect(sub.events).toHaveLength(1);
    sub.unsubscribe();
  });
});

describe('without REDIS_URL', () => {
  it('writes no outbox flag and runs no outbox: one process needs none', async () => {
    const gateway = await startGateway();
    try {
      await gateway.gql(PREDICT, { f: [5.1, 3.5, 1.4, 0.2] });
      expect(gateway.app.outbox).toBeUndefined();
      expect(await gateway.query(`SELECT "id" FROM "Prediction" WHERE "eventPending"`)).toEqual([]);
    } finally {
      await gateway.close();
    }
  });
});
