import { parse, Kind, type OperationDefinitionNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPHIQL_DEFAULT_QUERY } from '../src/app.ts';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { refusedCheaply } from './helpers/refusals.ts';

/** An iris tensor of `rows` rows in a variable (over 1,024 elements: it takes the token path). */
const irisRows = (rows: number) => [{ name: 'features', datatype: 'FP32', shape: [rows, 4], data: Array.from({ length: rows * 4 }, (_, i) => [5.1, 3.5, 1.4, 0.2][i % 4]!) }];
const PREDICT_TWICE = 'mutation($i: [TensorInput!]!) { a: predict(input: { model: "iris", inputs: $i }) { id } b: predict(input: { model: "iris", inputs: $i }) { id } }';
const PREDICT_ONCE = 'mutation($i: [TensorInput!]!) { a: predict(input: { model: "iris", inputs: $i }) { id } }';
const GENERATE_512 = 'subscription { generate(input: { model: "fortune", prompt: "The ", maxTokens: 512, seed: 1 }) { token done } }';

describe('MAX_QUERY_COST=500: what counts', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { MAX_QUERY_COST: '500' } });
  });
  afterAll(() => gw?.close());

  it('counts the elements of tensors sent as variables: two predicts of 50,000 elements (250 + 1 each) are refused with 400 QUERY_TOO_COMPLEX, running and storing nothing', async () => {
    const res = await refusedCheaply(gw, () => gw.gql(PREDICT_TWICE, { i: irisRows(12_500) }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      errors: [{ message: 'Operation cost 502 is over the limit of 500', extensions: { code: 'QUERY_TOO_COMPLEX', cost: 502, limit: 500 } }],
    });
    // The refusal has its log line, with its code.
    expect(gw.logs.filter((l) => l.msg === 'graphql operation' && l.errorCode === 'QUERY_TOO_COMPLEX')).toHaveLength(1);
  });

  it('runs one such predict (cost 251)', async () => {
    const rows = await gw.countRows();
    const res = await gw.gql(PREDICT_ONCE, { i: irisRows(12_500) });
    expect(res.body.errors).toBeUndefined();
    expect(await gw.countRows()).toBe(rows + 1);
  });

  it('counts page sizes: `first` multiplies what each edge selects, nested pages multiply each other', async () => {
    const page = (first: number) => `{ predictions(first: ${first}) { edges { node { id inputs { data } } } } }`;
    // node: 1 + id 1 + inputs (1 + 10 × data 1) = 13; edges: 1 + 13 = 14; predictions: 1 + first × 14
    expect((await gw.gql(page(35))).body.errors).toBeUndefined();
    const over = await gw.gql(page(36));
    expect(over.status).toBe(400);
    expect(over.body.errors![0]!.extensions).toEqual({ code: 'QUERY_TOO_COMPLEX', cost: 505, limit: 500 });
    const nested = await gw.gql('{ batchJobs(first: 5) { edges { node { results(first: 100) { edges { node { index } } } } } } }');
    expect(nested.body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', cost: 1 + 5 * (1 + 1 + 1 + 100 * 3) });
  });

  it('counts scores(top) and reads page sizes and maxTokens from variables', async () => {
    const scores = 'query($top: Int) { predictions(first: 10) { edges { node { scores(top: $top) { label probability } } } } }';
    // node: 1 + scores (1 + top × 2); edges: 1 + node; predictions: 1 + 10 × edges
    expect((await gw.gql(scores, { top: 3 })).body.errors).toBeUndefined();
    expect((await gw.gql(scores, { top: 30 })).body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', cost: 1 + 10 * (1 + 1 + 1 + 30 * 2) });
    const generate = 'mutation($n: Int) { generate(input: { model: "fortune", prompt: "The ", maxTokens: $n, seed: 1 }) { text } }';
    const refused = await refusedCheaply(gw, () => gw.gql(generate, { n: 500 }));
    expect(refused.body.errors![0]!.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', cost: 501 });
  });

  it('leaves out-of-range arguments to their own check (BAD_USER_INPUT), not the cost', async () => {
    const res = await gw.gql('{ predictions(first: 100000) { edges { node { id inputs { data } } } } }');
    expect(res.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a costly subscription before its first event over SSE (400) and WebSocket (no `http` in the body), generating nothing', async () => {
    const sse = await refusedCheaply(gw, async () => {
      const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query: GENERATE_512 }) });
      return { status: res.status, text: await res.text() };
    });
    expect(sse.status).toBe(400);
    expect(sse.text).toContain('"extensions":{"code":"QUERY_TOO_COMPLEX","cost":514,"limit":500}');
    const client = wsClient(gw.url);
    const sub = await refusedCheaply(gw, async () => {
      const s = subscribeWs(client, GENERATE_512);
      await s.done;
      return s;
    });
    await client.dispose();
    expect(sub.events).toEqual([{ errors: [{ message: 'Operation cost 514 is over the limit of 500', extensions: { code: 'QUERY_TOO_COMPLEX', cost: 514, limit: 500 } }] }]);
  });
});

describe('the default limit (20,000)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw?.close());

  it('runs both operations of the GraphiQL default document', async () => {
    const names = parse(GRAPHIQL_DEFAULT_QUERY).definitions.map((d) => (d as OperationDefinitionNode).name!.value);
    expect(parse(GRAPHIQL_DEFAULT_QUERY).definitions.every((d) => d.kind === Kind.OPERATION_DEFINITION)).toBe(true);
    expect(names).toEqual(['Predict', 'Generate']);
    const predict = await gw.gql('', undefined, { body: JSON.stringify({ query: GRAPHIQL_DEFAULT_QUERY, operationName: 'Predict' }) });
    expect(predict.body.errors).toBeUndefined();
    const generate = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: GRAPHIQL_DEFAULT_QUERY, operationName: 'Generate' }),
    });
    expect(generate.status).toBe(200);
    expect(await generate.text()).toMatch(/"done":true/);
  });

  it('runs a full history page (100 predictions with their tensors and scores, cost 11,501)', async () => {
    const res = await gw.gql('{ predictions(first: 100) { edges { cursor node { id createdAt label latencyMs modelName version inputs { name datatype shape data } outputs { name datatype shape data } scores { label probability } } } pageInfo { hasNextPage endCursor } } }');
    expect(res.body.errors).toBeUndefined();
  });

  it('refuses pages of pages: 100 jobs × 1,000 result rows', async () => {
    const res = await gw.gql('{ batchJobs(first: 100) { edges { node { results(first: 1000) { edges { node { index prediction { id label } } } } } } } }');
    expect(res.status).toBe(400);
    expect(res.body.errors![0]!.extensions).toEqual({ code: 'QUERY_TOO_COMPLEX', cost: 1 + 100 * (1 + 1 + 1 + 1000 * (1 + 1 + 1 + 1 + 1 + 1)), limit: 20_000 });
  });

  it('refuses 50 aliased predicts sharing one 250,000-element variable (each 1,251), with no ONNX run and no row', async () => {
    const aliases = Array.from({ length: 50 }, (_, i) => `p${i}: predict(input: { model: "iris", inputs: $i }) { id }`).join(' ');
    const res = await refusedCheaply(gw, () => gw.gql(`mutation($i: [TensorInput!]!) { ${aliases} }`, { i: irisRows(62_500) }));
    expect(res.body.errors![0]!.extensions).toEqual({ code: 'QUERY_TOO_COMPLEX', cost: 50 * 1251, limit: 20_000 });
  });
});
