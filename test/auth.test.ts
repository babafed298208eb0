import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../src/auth/api-keys.ts';
import type { Scope } from '../src/auth/principal.ts';
import { createApiKeyRepository } from '../src/store/api-key-repository.ts';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { waitFor } from './helpers/process.ts';
import { createTestKey } from './helpers/api-keys.ts';

const PREDICT = 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }';
const UNKNOWN_ID = '01a23792-0000-7000-8000-000000000000';

/** A key stored in the gateway's database, as `keys create` stores it. */
async function createKey(gw: TestGateway, name: string, scopes: Scope[]) {
  const { id, key, headers } = await createTestKey(gw.app.db, name, scopes);
  return { id, key, bearer: headers };
}

describe('AUTH_MODE=required', () => {
  let gw: TestGateway;
  let a: Awaited<ReturnType<typeof createKey>>;
  let b: typeof a;
  let predictOnly: typeof a;
  let readOnly: typeof a;
  let admin: typeof a;

  beforeAll(async () => {
    // Uploads over 64 bytes are refused while being read: an upload refused for its key first was never read.
    gw = await startGateway({ env: { AUTH_MODE: 'required', MAX_UPLOAD_BYTES: '64' } });
    a = await createKey(gw, 'a', ['predict', 'read']);
    b = await createKey(gw, 'b', ['predict', 'read']);
    predictOnly = await createKey(gw, 'p', ['predict']);
    readOnly = await createKey(gw, 'r', ['read']);
    admin = await createKey(gw, 'admin', ['admin']);
  });
  afterAll(() => gw.close());

  it('refuses a request without a key, with a malformed Authorization, or with an unknown key: 401 UNAUTHENTICATED, nothing stored', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }, { authorization: `Bearer ${generateApiKey()}` }, { 'x-api-key': 'not-a-key' }] as Array<Record<string, string>>) {
      const res = await gw.gql(PREDICT, undefined, { headers });
      expect(res.status).toBe(401);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(res.body.data ?? null).toBeNull();
    }
    expect(await gw.countRows()).toBe(0);
  });

  it('takes the key as `Authorization: Bearer` or `x-api-key`, and logs its id (never the key)', async () => {
    const viaBearer = await gw.gql(PREDICT, undefined, { headers: a.bearer });
    const viaHeader = await gw.gql(PREDICT, undefined, { headers: { 'x-api-key': a.key } });
    expect([viaBearer.status, viaHeader.status]).toEqual([200, 200]);
    expect(viaBearer.body.data.predict.id).toEqual(expect.any(String));
    const stored = await gw.query<{ apiKeyId: string }>('SELECT "apiKeyId" FROM "Prediction" WHERE "id" = $1', [viaHeader.body.data.predict.id]);
    expect(stored.map((r) => r.apiKeyId)).toEqual([a.id]);
    const line = gw.logs.find((l) => l.msg === 'graphql operation' && l.fields?.[0] === 'predict' && l.outcome === 'ok');
    expect(line?.keyId).toBe(a.id);
    expect(JSON.stringify(gw.logs)).not.toContain(a.key);
  });

  it('refuses a field whose scope the key lacks with 403 FORBIDDEN, before it runs: nothing stored', async () => {
    const before = await gw.countRows();
    const predict = await gw.gql(PREDICT, undefined, { headers: readOnly.bearer });
    expect(predict.status).toBe(403);
    expect(predict.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['predict'] });
    expect(await gw.countRows()).toBe(before);
    const history = await gw.gql('{ predictions { edges { node { id } } } }', undefined, { headers: predictOnly.bearer });
    expect(history.status).toBe(403);
    expect(history.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // A nullable field refused among others: its error, the other fields' data, status 200.
    const mixed = await gw.gql(`{ models { name } prediction(id: "${UNKNOWN_ID}") { id } }`, undefined, { headers: predictOnly.bearer });
    expect(mixed.status).toBe(200);
    expect(mixed.body.data).toEqual({ models: expect.arrayContaining([{ name: 'iris' }]), prediction: null });
    expect(mixed.body.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    // admin includes predict and read.
    expect((await gw.gql(PREDICT, undefined, { headers: admin.bearer })).status).toBe(200);
    expect((await gw.gql('{ predictions(first: 1) { edges { node { id } } } }', undefined, { headers: admin.bearer })).status).toBe(200);
  });

  it("shows a key only its own predictions and jobs; another key's id reads exactly like an unknown one; admin sees all", async () => {
    const pa = (await gw.gql(PREDICT, undefined, { headers: a.bearer })).body.data.predict.id as string;
    const pb = (await gw.gql(PREDICT, undefined, { headers: b.bearer })).body.data.predict.id as string;
    const one = (id: string, key: typeof a) => gw.gql('query ($id: ID!) { prediction(id: $id) { id } }', { id }, { headers: key.bearer });
    expect((await one(pa, a)).body).toEqual({ data: { prediction: { id: pa } } });
    expect((await one(pb, a)).body).toEqual((await one(UNKNOWN_ID, a)).body);
    expect((await one(pb, a)).body).toEqual({ data: { prediction: null } });
    expect((await one(pb, admin)).body).toEqual({ data: { prediction: { id: pb } } });
    const ids = async (key: typeof a) =>
      ((await gw.gql('{ predictions(first: 100) { edges { node { id } } } }', undefined, { headers: key.bearer })).body.data.predictions.edges as Array<{ node: { id: string } }>).map((e) => e.node.id);
    const ofA = await ids(a);
    expect(ofA).toContain(pa);
    expect(ofA).not.toContain(pb);
    expect(await ids(b)).toEqual([pb]);
    expect(await ids(admin)).toEqual(expect.arrayContaining([pa, pb]));

    // Batch jobs: the job and the predictions of its rows belong to the submitting key.
    const submit = await gw.gql('mutation { submitBatchJob(input: { model: "iris", rows: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], idempotencyKey: "auth-a" }) { id } }', undefined, { headers: a.bearer });
    const job = submit.body.data.submitBatchJob.id as string;
    const jobOf = (id: string, key: typeof a) => gw.gql('query ($id: ID!) { batchJob(id: $id) { id status results { edges { node { prediction { id } } } } } }', { id }, { headers: key.bearer });
    await waitFor(async () => (await jobOf(job, a)).body.data.batchJob.status === 'SUCCEEDED');
    const done = (await jobOf(job, a)).body.data.batchJob;
    const rowPredictions = done.results.edges.map((e: any) => e.node.prediction.id);
    expect(rowPredictions).toHaveLength(2);
    expect(await ids(a)).toEqual(expect.arrayContaining(rowPredictions));
    expect((await jobOf(job, b)).body).toEqual((await jobOf(UNKNOWN_ID, b)).body);
    expect((await jobOf(job, b)).body).toEqual({ data: { batchJob: null } });
    expect((await jobOf(job, admin)).body.data.batchJob.id).toBe(job);
    const jobIds = async (key: typeof a) => ((await gw.gql('{ batchJobs { edges { node { id } } } }', undefined, { headers: key.bearer })).body.data.batchJobs.edges as any[]).map((e) => e.node.id);
    expect(await jobIds(a)).toEqual([job]);
    expect(await jobIds(b)).toEqual([]);
    expect(await jobIds(admin)).toEqual([job]);

    // cancelBatchJob: NOT_FOUND, the same answer as for an unknown id (but for the id in it).
    const cancel = async (id: string, key: typeof a) => JSON.stringify((await gw.gql('mutation ($id: ID!) { cancelBatchJob(id: $id) { id } }', { id }, { headers: key.bearer })).body).replaceAll(id, '<id>');
    expect(await cancel(job, b)).toBe(await cancel(UNKNOWN_ID, b));
    expect(await cancel(job, b)).toContain('NOT_FOUND');
    expect(await cancel(job, a)).toContain('"cancelBatchJob":{"id":"<id>"}');
    // Another key's idempotencyKey neither returns nor names its job.
    const reuse = await gw.gql('mutation { submitBatchJob(input: { model: "iris", rows: [[5.1, 3.5, 1.4, 0.2]], idempotencyKey: "auth-a" }) { id } }', undefined, { headers: b.bearer });
    expect(reuse.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(JSON.stringify(reuse.body)).not.toContain(job);

    // The results download: read scope and ownership, 404 like an unknown id.
    const download = (id: string, headers: Record<string, string>) => fetch(`${gw.url}/batch-jobs/${id}/results.csv`, { headers });
    expect((await download(job, a.bearer)).status).toBe(200);
    expect((await download(job, admin.bearer)).status).toBe(200);
    const foreign = await download(job, b.bearer);
    const unknown = await download(UNKNOWN_ID, b.bearer);
    expect(foreign.status).toBe(404);
    expect((await foreign.text()).replaceAll(job, '<id>')).toBe((await unknown.text()).replaceAll(UNKNOWN_ID, '<id>'));
    expect((await download(job, {})).status).toBe(401);
    expect((await download(job, predictOnly.bearer)).status).toBe(403);
  });

  it('streams each key only its own predictions over SSE and WebSocket (identical subscriptions of different keys never share an execution); admin hears all', async () => {
    const query = 'subscription { predictionCreated(model: "iris") { id } }';
    const wsA = wsClient(gw.url, { authorization: `Bearer ${a.key}` });
    const wsB = wsClient(gw.url, { apiKey: b.key });
    const wsAdmin = wsClient(gw.url, { apiKey: admin.key });
    const subs = {
      sseA: subscribeSse(gw.url, query, undefined, a.bearer),
      wsA: subscribeWs(wsA, query),
      sseB: subscribeSse(gw.url, query, undefined, { 'x-api-key': b.key }),
      wsB: subscribeWs(wsB, query),
      wsAdmin: subscribeWs(wsAdmin, query),
    };
    await waitFor(async () => gw.app.sharedSubscriptions().subscribers.length === 5);
    expect(gw.app.sharedSubscriptions().executions).toBe(3); // a's, b's and every key's (admin)
    const made: string[] = [];
    for (const key of [a, b, a, b]) made.push((await gw.gql(PREDICT, undefined, { headers: key.bearer })).body.data.predict.id);
    await Promise.all([subs.sseA.waitFor(2), subs.wsA.waitFor(2), subs.sseB.waitFor(2), subs.wsB.waitFor(2), subs.wsAdmin.waitFor(4)]);
    const got = (s: (typeof subs)['sseA']) => s.events.map((e) => e.data?.predictionCreated.id);
    // b's second prediction came after a's: had a's leaked to b, b would have heard it first.
    expect(got(subs.sseA)).toEqual([made[0], made[2]]);
    expect(got(subs.wsA)).toEqual([made[0], made[2]]);
    expect(got(subs.sseB)).toEqual([made[1], made[3]]);
    expect(got(subs.wsB)).toEqual([made[1], made[3]]);
    expect(got(subs.wsAdmin)).toEqual(made);
    for (const s of Object.values(subs)) s.unsubscribe();
    await Promise.all([wsA.dispose(), wsB.dispose(), wsAdmin.dispose()]);
  });

  it("refuses batchJobProgress on another key's job with NOT_FOUND, like an unknown id, over SSE and WebSocket", async () => {
    const job = (await gw.gql('mutation { submitBatchJob(input: { model: "iris", rows: [[5.1, 3.5, 1.4, 0.2]] }) { id } }', undefined, { headers: a.bearer })).body.data.submitBatchJob.id;
    const query = 'subscription ($id: ID!) { batchJobProgress(id: $id) { id status } }';
    const wsB = wsClient(gw.url, { apiKey: b.key });
    const foreignWs = subscribeWs(wsB, query, { id: job });
    const foreignSse = subscribeSse(gw.url, query, { id: job }, b.bearer);
    const own = subscribeSse(gw.url, query, { id: job }, a.bearer);
    await own.done;
    expect(own.events.at(-1)?.data?.batchJobProgress).toEqual({ id: job, status: 'SUCCEEDED' });
    await foreignWs.done;
    expect(foreignWs.events[0]?.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    await foreignSse.done.catch(() => undefined);
    expect(foreignSse.events.some((e) => e.data?.batchJobProgress)).toBe(false);
    await wsB.dispose();
  });

  it('closes a WebSocket whose connection_init has no key or a bad one with 4401; runs operations with the scopes of a good one', async () => {
    for (const params of [undefined, { apiKey: generateApiKey() }, { authorization: 'Token x' }]) {
      const client = wsClient(gw.url, params);
      const sub = subscribeWs(client, '{ models { name } }');
      const failure: any = await sub.done.then(() => undefined, (error: Error) => error.cause);
      expect(failure?.code).toBe(4401);
      await client.dispose();
    }
    const client = wsClient(gw.url, { apiKey: readOnly.key });
    const models = subscribeWs(client, '{ models { name } }');
    await models.done;
    expect(models.events[0]?.data).toEqual({ models: expect.arrayContaining([{ name: 'iris' }]) });
    const predict = subscribeWs(client, PREDICT);
    await predict.done;
    expect(predict.events[0]?.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await client.dispose();
  });

  it('refuses an upload without a valid key before reading it (401, not the 413 its size would get), and takes it with one', async () => {
    const upload = (headers: Record<string, string>, rows: string) => {
      const form = new FormData();
      form.set('operations', JSON.stringify({ query: 'mutation ($f: File!) { submitBatchJob(input: { model: "iris", file: $f }) { total } }', variables: { f: null } }));
      form.set('map', JSON.stringify({ 0: ['variables.f'] }));
      form.set('0', new Blob([rows]), 'rows.csv');
      return fetch(`${gw.url}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': '1', ...headers } });
    };
    const big = '5.1,3.5,1.4,0.2\n'.repeat(100);
    const anonymous = await upload({}, big);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect((await upload(a.bearer, big)).status).toBe(413);
    const small = await upload(a.bearer, '5.1,3.5,1.4,0.2\n');
    expect(await small.json()).toEqual({ data: { submitBatchJob: { total: 1 } } });
  });

  it('refuses a revoked key', async () => {
    const doomed = await createKey(gw, 'doomed', ['predict', 'read']);
    await createApiKeyRepository(gw.app.db).revoke(doomed.id, new Date());
    const res = await gw.gql('{ models { name } }', undefined, { headers: doomed.bearer });
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('AUTH_MODE=off (the default)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('asks for no key and ignores one sent: everything runs, rows carry no key, every caller sees every row', async () => {
    const plain = await gw.gql(PREDICT);
    const withJunk = await gw.gql(PREDICT, undefined, { headers: { authorization: 'Basic junk', 'x-api-key': 'junk' } });
    expect([plain.status, withJunk.status]).toEqual([200, 200]);
    const rows = await gw.query<{ apiKeyId: string | null }>('SELECT "apiKeyId" FROM "Prediction"');
    expect(rows).toEqual([{ apiKeyId: null }, { apiKeyId: null }]);
    const list = await gw.gql('{ predictions { edges { node { id } } } }');
    expect(list.body.data.predictions.edges).toHaveLength(2);
  });
});
