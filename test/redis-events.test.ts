import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { eventSerializer } from '../src/pubsub/redis-event-target.ts';
import { REDIS_URL, redisAnswers, redisSubscribed } from './helpers/redis.ts';

const PREDICT = `mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id label createdAt } }`;


const available = await redisAnswers();
if (!available) console.warn(`redis-events.test.ts: SKIPPED, no Redis at ${REDIS_URL}`);

describe.skipIf(!available)('events across replicas through Redis (REDIS_URL)', () => {
  let a: TestGateway;
  let b: TestGateway;
  let other: TestGateway;
  const prefix = `test-${randomUUID()}:`;
  beforeAll(async () => {
    // A and B are two replicas of one deployment; `other` shares the Redis server with another prefix.
    [a, b, other] = await Promise.all([
      startGateway({ env: { REDIS_URL, REDIS_PREFIX: prefix } }),
      startGateway({ env: { REDIS_URL, REDIS_PREFIX: prefix } }),
      startGateway({ env: { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:` } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), other?.close()]);
  });

  it('a predictionCreated subscriber on replica A (WebSocket) and one on B (SSE) hear a prediction made on B, with its fields intact', async () => {
    const client = wsClient(a.url);
    const query = `subscription { predictionCreated(model: "iris") { id label createdAt scores(top: 1) { label } } }`;
    const onA = subscribeWs(client, query);
    const onB = subscribeSse(b.url, query);
    const onOther = subscribeWs(wsClient(other.url), query);
    await redisSubscribed(`${prefix}prediction.created`, 2); // A's and B's subscriptions reached Redis
    const made = (await b.gql(PREDICT, { f: [6.7, 3.0, 5.2, 2.3] })).body.data.predict;
    await onA.waitFor(1);
    await onB.waitFor(1);
    expect(onA.events[0]!.data!.predictionCreated).toEqual({ id: made.id, label: 'virginica', createdAt: made.createdAt, scores: [{ label: 'virginica' }] });
    expect(onB.events[0]!.data!.predictionCreated).toEqual(onA.events[0]!.data!.predictionCreated);
    await new Promise((r) => setTimeout(r, 200));
    expect(onOther.events).toEqual([]); // another prefix: another deployment
    onA.unsubscribe();
    onB.unsubscribe();
    onOther.unsubscribe();
    await client.dispose();
  });

  it('/readyz reports Redis', async () => {
    const res = await fetch(`${a.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ready', redis: 'ok' });
  });
});

describe('the event serializer', () => {
  it('revives the records\' dates and leaves other strings alone', () => {
    const payload = { id: 'x', createdAt: new Date('2026-12-02T10:00:00.123Z'), finishedAt: null, text: '2026-12-02T10:00:00.123Z' };
    expect(eventSerializer.parse(eventSerializer.stringify(payload))).toEqual(payload);
  });
});
