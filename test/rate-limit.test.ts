import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { REDIS_URL, redisAnswers } from './helpers/redis.ts';

/** ONNX runs of every served version so far, read in process (a GraphQL query would be charged as a read). */
const onnxRuns = (gw: TestGateway) => gw.app.models.list().flatMap((m) => m.versions).reduce((sum, v) => sum + (v.served?.stats.runs ?? 0), 0);

/** A predict of `rows` iris rows, from the address `from` (TRUST_PROXY reads it from X-Forwarded-For). */
function predict(gw: TestGateway, rows: number, from = '203.0.113.1') {
  const data = Array.from({ length: rows }, () => [5.1, 3.5, 1.4, 0.2]).flat();
  return gw.gql(
    `mutation ($d: [Float!]!, $s: [Int!]!) { predict(input: { model: "iris", inputs: [{ name: "features", datatype: FP32, shape: $s, data: $d }] }) { id } }`,
    { d: data, s: [rows, 4] },
    { headers: { 'x-forwarded-for': `198.51.100.7, ${from}` } },
  );
}

/** Runs `refused`, and checks it made no ONNX run and wrote no row. */
async function refusedCheaply<T>(gw: TestGateway, refused: () => Promise<T>): Promise<T> {
  const before = { runs: onnxRuns(gw), rows: await gw.countRows() };
  const result = await refused();
  expect({ runs: onnxRuns(gw), rows: await gw.countRows() }).toEqual(before);
  return result;
}

describe('rate limits (RATE_LIMITS), charged by work per caller', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { RATE_LIMITS: 'predict:5/1m,generate:100/1m,batch:10/1m,read:3/1m', TRUST_PROXY: 'true' } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('charges a predict its rows: 3 + 2 rows pass, one more row is RATE_LIMITED with HTTP 429, Retry-After and retryAfterMs, before any inference or write', async () => {
    expect((await predict(gw, 3, '203.0.113.10')).body.data.predict.id).toBeTypeOf('string');
    expect((await predict(gw, 2, '203.0.113.10')).body.data.predict.id).toBeTypeOf('string');
    const refused = await refusedCheaply(gw, () => predict(gw, 1, '203.0.113.10'));
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', operationClass: 'predict', limit: 5, windowSeconds: 60 });
    expect(refused.body.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
    expect(refused.body.errors![0]!.extensions!.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('keeps each caller to its own budget: another address still predicts', async () => {
    expect((await predict(gw, 5, '203.0.113.20')).body.data.predict.id).toBeTypeOf('string');
    expect((await predict(gw, 1, '203.0.113.20')).status).toBe(429);
    expect((await predict(gw, 1, '203.0.113.21')).body.data.predict.id).toBeTypeOf('string');
  });

  it('charges a generation its maxTokens', async () => {
    const generate = (maxTokens: number) =>
      gw.gql(`mutation ($n: Int!) { generate(input: { model: "fortune", prompt: "The ", maxTokens: $n, seed: 1 }) { tokens } }`, { n: maxTokens }, {
        headers: { 'x-forwarded-for': '203.0.113.30' },
      });
    expect((await generate(80)).body.data.generate.tokens).toBeGreaterThan(0);
    const refused = await refusedCheaply(gw, () => generate(30));
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', operationClass: 'generate', limit: 100 });
  });

  it('charges a batch job its rows, and a refused job is never written', async () => {
    const submit = (rows: number) =>
      gw.gql(`mutation ($r: [[Float!]!]!) { submitBatchJob(input: { model: "iris", rows: $r }) { id total } }`, { r: Array.from({ length: rows }, () => [5.1, 3.5, 1.4, 0.2]) }, {
        headers: { 'x-forwarded-for': '203.0.113.40' },
      });
    expect((await submit(8)).body.data.submitBatchJob.total).toBe(8);
    const jobs = await gw.query('SELECT COUNT(*) AS "n" FROM "BatchJob"');
    const refused = await submit(5);
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', operationClass: 'batch', limit: 10 });
    expect(await gw.query('SELECT COUNT(*) AS "n" FROM "BatchJob"')).toEqual(jobs);
  });

  it('charges reads one per root field, and refuses a subscription over WebSocket with the code (no HTTP status there)', async () => {
    // WebSocket callers are keyed by the upgrade request's address (X-Forwarded-For is not sent by this client): 127.0.0.1.
    const read = (from: string) => gw.gql('{ models { name } }', undefined, { headers: { 'x-forwarded-for': from } });
    expect((await read('203.0.113.50')).status).toBe(200);
    expect((await gw.gql('{ a: models { name } b: models { name } }', undefined, { headers: { 'x-forwarded-for': '203.0.113.50' } })).status).toBe(200);
    expect((await read('203.0.113.50')).body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', operationClass: 'read' });

    for (let i = 0; i < 3; i++) {
      const ok = subscribeWs(wsClient(gw.url), '{ models { name } }');
      await ok.done;
      expect(ok.events[0]!.errors).toBeUndefined();
    }
    const refused = subscribeWs(wsClient(gw.url), `subscription { predictionCreated { id } }`);
    await refused.waitFor(1);
    expect(refused.events[0]!.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED', operationClass: 'read' });
    expect(refused.events[0]!.errors![0]!.extensions!.http).toBeUndefined();
    refused.unsubscribe();
  });
});

describe('rate-limit refusals in /metrics', () => {
  it('counts each refusal by operation class in gateway_rate_limited_total', async () => {
    const gw = await startGateway({ env: { RATE_LIMITS: 'predict:1/1m,read:1/1m' } });
    try {
      await predict(gw, 1);
      for (let i = 0; i < 3; i++) expect((await predict(gw, 1)).status).toBe(429);
      await gw.gql('{ models { name } }');
      expect((await gw.gql('{ models { name } }')).status).toBe(429);
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      const count = (operationClass: string) => Number(new RegExp(`^gateway_rate_limited_total\\{operation_class="${operationClass}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
      expect({ predict: count('predict'), read: count('read') }).toEqual({ predict: 3, read: 1 });
    } finally {
      await gw.close();
    }
  });
});

describe('recovery', () => {
  it('a refused caller is served again once the window it was told to wait has passed', async () => {
    const gw = await startGateway({ env: { RATE_LIMITS: 'predict:2/1s' } });
    try {
      expect((await predict(gw, 2)).status).toBe(200);
      const refused = await predict(gw, 1);
      expect(refused.status).toBe(429);
      await new Promise((r) => setTimeout(r, refused.body.errors![0]!.extensions!.retryAfterMs + 50));
      expect((await predict(gw, 2)).body.data.predict.id).toBeTypeOf('string');
    } finally {
      await gw.close();
    }
  });

  it('a request bigger than a whole window is charged the whole window: allowed on a fresh budget, then refused', async () => {
    const gw = await startGateway({ env: { RATE_LIMITS: 'predict:4/1m' } });
    try {
      expect((await predict(gw, 10)).body.data.predict.id).toBeTypeOf('string');
      expect((await predict(gw, 1)).status).toBe(429);
    } finally {
      await gw.close();
    }
  });

  it('an operation the cost limit refuses is not charged to the budget', async () => {
    const gw = await startGateway({ env: { RATE_LIMITS: 'predict:2/1m', MAX_QUERY_COST: '50' } });
    try {
      const tooCostly = await predict(gw, 2500); // 10,000 elements: cost 50 and more
      expect(tooCostly.body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX' });
      expect((await predict(gw, 2)).body.data.predict.id).toBeTypeOf('string');
    } finally {
      await gw.close();
    }
  });

  it('without RATE_LIMITS nothing is limited', async () => {
    const gw = await startGateway();
    try {
      for (let i = 0; i < 5; i++) expect((await predict(gw, 50)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

const redis = await redisAnswers();
if (!redis) console.warn(`rate-limit.test.ts: replica test SKIPPED, no Redis at ${REDIS_URL}`);

describe.skipIf(!redis)('rate limits across replicas (REDIS_URL)', () => {
  it('two replicas draw on one budget per caller', async () => {
    const env = { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:`, RATE_LIMITS: 'predict:4/1m', TRUST_PROXY: 'true' };
    const [a, b] = await Promise.all([startGateway({ env }), startGateway({ env })]);
    try {
      expect((await predict(a, 3, '203.0.113.60')).status).toBe(200);
      const refused = await refusedCheaply(b, () => predict(b, 2, '203.0.113.60'));
      expect(refused.status).toBe(429);
      expect((await predict(b, 1, '203.0.113.60')).status).toBe(200);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
