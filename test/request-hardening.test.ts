import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { countJobs, refusedCheaply } from './helpers/refusals.ts';

const PREDICT = 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id label } }';
const GENERATE = 'subscription { generate(input: { model: "fortune", prompt: "The ", maxTokens: 3, seed: 1 }) { token done predictionId } }';
const SUBMIT = 'mutation ($f: File!) { submitBatchJob(input: { model: "iris", file: $f }) { id status total } }';

async function answer(res: Response) {
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as { data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> } };
}

/** A GraphQL multipart request submitting a two-row CSV as a batch job. */
function uploadForm(): FormData {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: SUBMIT, variables: { f: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.f'] }));
  form.set('0', new Blob(['5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n']), 'rows.csv');
  return form;
}

/** The gateway with its defaults, for every describe but INTROSPECTION=false. */
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

describe('requests a browser could send cross-site are refused before anything runs', () => {
  it.each([
    ['a form-encoded POST', 'application/x-www-form-urlencoded', new URLSearchParams({ query: PREDICT }).toString()],
    ['a text/plain POST holding JSON', 'text/plain', JSON.stringify({ query: PREDICT })],
    ['an application/graphql POST', 'application/graphql', PREDICT],
  ])('refuses %s with 415 UNSUPPORTED_MEDIA_TYPE, running and storing nothing', async (_, contentType, body) => {
    const res = await refusedCheaply(gw, async () => answer(await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': contentType }, body })));
    expect(res.status).toBe(415);
    expect(res.body.errors).toEqual([
      {
        message: `POST bodies must be application/json or application/graphql+json (or multipart/form-data for uploads), got \`${contentType}\``,
        extensions: { code: 'UNSUPPORTED_MEDIA_TYPE', accepted: ['application/json', 'application/graphql+json', 'multipart/form-data'] },
      },
    ]);
  });

  it('refuses a POST with no Content-Type with 415', async () => {
    const res = await refusedCheaply(gw, async () => answer(await fetch(`${gw.url}/graphql`, { method: 'POST', body: new Blob([JSON.stringify({ query: PREDICT })]) })));
    expect(res.status).toBe(415);
    expect(res.body.errors![0]!.extensions!.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(res.body.errors![0]!.message).toMatch(/got no Content-Type$/);
  });

  it('runs JSON POSTs, with a charset and as application/graphql+json (the draft name Yoga reads)', async () => {
    for (const contentType of ['application/json; charset=utf-8', 'application/graphql+json']) {
      const res = await gw.gql(PREDICT, undefined, { headers: { 'content-type': contentType } });
      expect(res.status).toBe(200);
      expect(res.body.data.predict.label).toBe('setosa');
    }
  });

  it('refuses a multipart upload without a CSRF header with 403 CSRF_HEADER_REQUIRED, queueing no job', async () => {
    const res = await refusedCheaply(gw, async () => answer(await fetch(`${gw.url}/graphql`, { method: 'POST', body: uploadForm() })));
    expect(res.status).toBe(403);
    expect(res.body.errors).toEqual([
      {
        message: 'Multipart requests need one of the headers `x-graphql-yoga-csrf`, `apollo-require-preflight` (any value)',
        extensions: { code: 'CSRF_HEADER_REQUIRED', headers: ['x-graphql-yoga-csrf', 'apollo-require-preflight'] },
      },
    ]);
  });

  it.each(['x-graphql-yoga-csrf', 'apollo-require-preflight'])('takes a multipart upload with the %s header', async (header) => {
    const jobs = await countJobs(gw);
    const res = await answer(await fetch(`${gw.url}/graphql`, { method: 'POST', body: uploadForm(), headers: { [header]: 'true' } }));
    expect(res.status).toBe(200);
    expect(res.body.data.submitBatchJob).toMatchObject({ status: 'QUEUED', total: 2 });
    expect(await countJobs(gw)).toBe(jobs + 1);
    // Let it finish: its rows are predictions, which the later counts must not see arrive.
    const status = async () => (await gw.gql('query($id: ID!) { batchJob(id: $id) { status } }', { id: res.body.data.submitBatchJob.id })).body.data.batchJob.status;
    await expect.poll(status, { timeout: 15_000 }).toBe('SUCCEEDED');
  });
});

describe('GET runs queries; mutations never, subscriptions only with a CSRF header', () => {
  const get = (query: string, headers: Record<string, string>) => fetch(`${gw.url}/graphql?query=${encodeURIComponent(query)}`, { headers });

  it('refuses a mutation over GET with 405 BAD_REQUEST (Yoga), even with the CSRF header, running and storing nothing', async () => {
    const res = await refusedCheaply(gw, async () => answer(await get(PREDICT, { accept: 'application/graphql-response+json', 'x-graphql-yoga-csrf': '1' })));
    expect(res.status).toBe(405);
    expect(res.body.errors).toEqual([{ message: 'Can only perform a mutation operation from a POST request.', extensions: { code: 'BAD_REQUEST' } }]);
  });

  it('refuses a generate subscription over GET without the header with 403 CSRF_HEADER_REQUIRED, as an EventSource or an <img> would send it, generating nothing', async () => {
    for (const accept of ['text/event-stream', 'image/avif,image/webp,*/*']) {
      const res = await refusedCheaply(gw, async () => {
        const r = await get(GENERATE, { accept });
        return { status: r.status, text: await r.text() };
      });
      expect(res.status).toBe(403);
      expect(res.text).toContain('Subscriptions over GET need one of the headers `x-graphql-yoga-csrf`, `apollo-require-preflight` (any value)');
      expect(res.text).toContain('"code":"CSRF_HEADER_REQUIRED"');
    }
  });

  it('runs a generate subscription over GET with the header (as GraphiQL sends it), and over POST without one', async () => {
    const rows = await gw.countRows();
    const overGet = await get(GENERATE, { accept: 'text/event-stream', 'x-graphql-yoga-csrf': '1' });
    expect(overGet.status).toBe(200);
    expect(await overGet.text()).toMatch(/"done":true/);
    const overPost = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: GENERATE }),
    });
    expect(overPost.status).toBe(200);
    expect(await overPost.text()).toMatch(/"done":true/);
    expect(await gw.countRows()).toBe(rows + 2);
  });
});

describe('batched requests (an array of operations in one body)', () => {
  it.each([
    ['one operation', 1],
    ['a thousand operations', 1000],
  ])('are refused whole with 400 BAD_REQUEST, "Batching is not supported.": %s, nothing run or stored', async (_, n) => {
    const body = JSON.stringify(Array.from({ length: n }, () => ({ query: PREDICT })));
    const res = await refusedCheaply(gw, () => gw.gql('', undefined, { body }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ errors: [{ message: 'Batching is not supported.', extensions: { code: 'BAD_REQUEST' } }] });
  });

  it('are refused as multipart operations too', async () => {
    const form = new FormData();
    form.set('operations', JSON.stringify([{ query: PREDICT }, { query: PREDICT }]));
    form.set('map', '{}');
    const res = await refusedCheaply(gw, async () => answer(await fetch(`${gw.url}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': '1' } })));
    expect(res.status).toBe(400);
    expect(res.body.errors![0]).toEqual({ message: 'Batching is not supported.', extensions: { code: 'BAD_REQUEST' } });
  });
});

describe('errors over WebSocket', () => {
  it.each([
    ['a validation error (unknown field)', '{ modelz { name } }', undefined],
    ['a bad variable value', 'mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id } }', { f: ['x'] }],
  ])('%s has the body it has over HTTP: no `extensions.http`', async (_, query, variables) => {
    const overHttp = (await gw.gql(query, variables)).body.errors!;
    expect(overHttp[0]!.extensions!.code).toMatch(/GRAPHQL_VALIDATION_FAILED|BAD_USER_INPUT/);
    const client = wsClient(gw.url);
    const sub = subscribeWs(client, query, variables);
    await sub.done;
    await client.dispose();
    expect(sub.events).toEqual([{ errors: overHttp }]);
  });
});

describe('INTROSPECTION=false', () => {
  let closed: TestGateway;
  beforeAll(async () => {
    closed = await startGateway({ env: { INTROSPECTION: 'false' } });
  });
  afterAll(() => closed.close());

  it("refuses GraphiQL's introspection query with INTROSPECTION_DISABLED (400 for graphql-response+json, 200 for json)", async () => {
    const res = await closed.gql(getIntrospectionQuery());
    expect(res.status).toBe(400);
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors![0]).toMatchObject({
      message: 'GraphQL introspection has been disabled, but the requested query contained the field "__schema".',
      extensions: { code: 'INTROSPECTION_DISABLED' },
    });
    const json = await closed.gql(getIntrospectionQuery(), undefined, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(200);
    expect(json.body.errors![0]!.extensions!.code).toBe('INTROSPECTION_DISABLED');
  });

  it('refuses __type, and an operation that hides __schema beside a predict, running nothing', async () => {
    expect((await closed.gql('{ __type(name: "Query") { name } }')).body.errors![0]!.extensions!.code).toBe('INTROSPECTION_DISABLED');
    // Validation covers the whole document, so the predict beside it does not run either.
    const document = `mutation M { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } } query Q { __schema { types { name } } }`;
    const res = await refusedCheaply(closed, () => closed.gql('', undefined, { body: JSON.stringify({ query: document, operationName: 'M' }) }));
    expect(res.body.errors![0]!.extensions!.code).toBe('INTROSPECTION_DISABLED');
  });

  it('refuses introspection over WebSocket too', async () => {
    const client = wsClient(closed.url);
    const sub = subscribeWs(client, '{ __schema { queryType { name } } }');
    await sub.done.catch(() => undefined);
    await client.dispose();
    // graphql-js's rule names every field of an introspection type: `__schema`, then `queryType`.
    const errors = sub.events.flatMap((e) => e.errors ?? []);
    expect(errors.map((e) => e.extensions?.code)).toEqual(['INTROSPECTION_DISABLED', 'INTROSPECTION_DISABLED']);
    expect(errors[0]!.message).toContain('"__schema"');
  });

  it('still runs operations, and __typename', async () => {
    expect((await closed.gql('{ __typename models { name } }')).body.data.__typename).toBe('Query');
    expect((await closed.gql(PREDICT)).body.data.predict.label).toBe('setosa');
  });
});
