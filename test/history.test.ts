import { execute, parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '../src/schema/builder.ts';
import { schema } from '../src/schema/index.ts';
import { createLoaders } from '../src/store/loaders.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { startGateway, type GraphQLResponse, type TestGateway } from './helpers/gateway.ts';
import { ANONYMOUS } from '../src/auth/principal.ts';

let gw: TestGateway;
const statements: string[] = [];
const ids: Record<string, string[]> = { iris: [], diabetes: [] };
let midpoint: string;

const predictIris = (features: number[]) =>
  gw.gql(`mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id createdAt } }`, { f: features });
const predictDiabetes = () =>
  gw.gql(`mutation { predict(input: { model: "diabetes", features: [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87] }) { id createdAt } }`);

/** Resolves on the first event-loop turn whose clock has passed `time` (createdAt has millisecond resolution). */
async function clockPast(time: string): Promise<void> {
  while (Date.now() <= Date.parse(time)) await new Promise((r) => setImmediate(r));
}

beforeAll(async () => {
  gw = await startGateway({ onQuery: (sql) => statements.push(sql) });
  for (let i = 0; i < 30; i++) {
    const res = await predictIris([5 + (i % 10) / 10, 3.4, 1.4, 0.2]);
    ids.iris!.push(res.body.data.predict.id);
    if (i === 14) {
      // Later than the 15th prediction, no later than the 16th.
      await clockPast(res.body.data.predict.createdAt);
      midpoint = new Date().toISOString();
    }
  }
  for (let i = 0; i < 5; i++) ids.diabetes!.push((await predictDiabetes()).body.data.predict.id);
});
afterAll(() => gw.close());

const PAGE = `query($first: Int, $after: String, $model: String, $version: Int, $since: DateTime, $until: DateTime) {
  predictions(first: $first, after: $after, model: $model, version: $version, since: $since, until: $until) {
    edges { cursor node { id modelName version createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

describe('history', () => {
  it('pages through every prediction, newest first, without gaps or repeats', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const res: GraphQLResponse = await gw.gql(PAGE, { first: 8, after });
      expect(res.body.errors).toBeUndefined();
      const { edges, pageInfo }: { edges: any[]; pageInfo: any } = res.body.data.predictions;
      seen.push(...edges.map((e: any) => e.node.id));
      pages++;
      expect(pageInfo.endCursor).toBe(edges.at(-1)?.cursor ?? null);
      expect(pageInfo.startCursor).toBe(edges[0]?.cursor ?? null);
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(pages).toBe(5); // 35 rows in pages of 8
    const all = [...ids.iris!, ...ids.diabetes!];
    expect(seen).toEqual([...all].reverse());
  });

  it('filters by model and version', async () => {
    const res = await gw.gql(PAGE, { first: 100, model: 'diabetes' });
    expect(res.body.data.predictions.edges.map((e: any) => e.node.id)).toEqual([...ids.diabetes!].reverse());
    const none = await gw.gql(PAGE, { first: 100, model: 'iris', version: 2 });
    expect(none.body.data.predictions.edges).toEqual([]);
    const v1 = await gw.gql(PAGE, { first: 100, model: 'iris', version: 1 });
    expect(v1.body.data.predictions.edges).toHaveLength(30);
  });

  it('filters by time: since is inclusive, until exclusive', async () => {
    const later = await gw.gql(PAGE, { first: 100, model: 'iris', since: midpoint });
    expect(later.body.data.predictions.edges.map((e: any) => e.node.id)).toEqual(ids.iris!.slice(15).reverse());
    const earlier = await gw.gql(PAGE, { first: 100, model: 'iris', until: midpoint });
    expect(earlier.body.data.predictions.edges.map((e: any) => e.node.id)).toEqual(ids.iris!.slice(0, 15).reverse());
  });

  it('reads one prediction back with its tensors', async () => {
    const id = ids.diabetes![2]!;
    const res = await gw.gql(`query($id: ID!) { prediction(id: $id) { id modelName version value inputs { name shape data } model { name kind } } }`, { id });
    const p = res.body.data.prediction;
    expect(p).toMatchObject({ id, modelName: 'diabetes', version: 1, model: { name: 'diabetes', kind: 'REGRESSOR' } });
    expect(p.inputs).toEqual([{ name: 'features', shape: [1, 10], data: [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87] }]);
    expect(typeof p.value).toBe('number');
  });
});

describe('SQL statements per operation', () => {
  const NESTED = `query($first: Int) {
    predictions(first: $first) {
      edges { node { id label scores(top: 1) { label } model { name kind labels defaultVersion { version inputs { name } }
        versions { version status outputs { name shape } } } } }
    }
  }`;
  const byIds = (list: readonly string[]) =>
    `{ ${list.map((id, i) => `p${i}: prediction(id: "${id}") { id modelName model { name } }`).join('\n')} }`;

  async function statementsFor(query: string, variables: Record<string, unknown> = {}): Promise<string[]> {
    statements.length = 0;
    const res = await gw.gql(query, variables);
    expect(res.body.errors).toBeUndefined();
    return [...statements];
  }

  it('predictions(first: 50) with nested model and version fields is one SELECT, as for a page of 2 (model metadata is in memory)', async () => {
    for (let i = 0; i < 20; i++) await predictDiabetes(); // 55 rows in all
    expect(await statementsFor(NESTED, { first: 2 })).toHaveLength(1);
    statements.length = 0;
    const res = await gw.gql(NESTED, { first: 50 });
    expect(res.body.data.predictions.edges).toHaveLength(50);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^SELECT/);
  });

  it('22 aliased prediction(id) fields in one operation, a repeated and an unknown id among them, are one SELECT through the request DataLoader', async () => {
    const wanted = [...ids.iris!.slice(0, 15), ...ids.diabetes!, ids.iris![3]!]; // one id twice
    const unknown = '0190b6c2-0000-7000-8000-000000000000';
    statements.length = 0;
    const res = await gw.gql(byIds([...wanted, unknown]));
    expect(res.body.errors).toBeUndefined();
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^SELECT/);
    const found = Object.values<{ id: string } | null>(res.body.data);
    expect(found.map((p) => p?.id ?? null)).toEqual([...wanted, null]);
  });

  it('each operation has its own loader: the same lookups in the next operation read the database again', async () => {
    const query = byIds(ids.iris!.slice(0, 5));
    expect(await statementsFor(query)).toHaveLength(1);
    expect(await statementsFor(query)).toHaveLength(1);
  });

  it('predictions(...) primes the request loader: its rows read again through prediction(id) cost no statement', async () => {
    // No field of the schema reads a prediction by id after a page has resolved, so the page
    // and the re-read are run here as two executions sharing one request context.
    const predictions = createPredictionRepository(gw.app.db, { writer: gw.app.historyWriter });
    const context = { requestId: 'test', models: gw.app.models, predictions, loaders: createLoaders(predictions), principal: ANONYMOUS } as unknown as Context;
    statements.length = 0;
    const page = await execute({ schema, document: parse('{ predictions(first: 10, model: "iris") { edges { node { id } } } }'), contextValue: context });
    expect(page.errors).toBeUndefined();
    expect(statements).toHaveLength(1);
    const pageIds = (page.data as any).predictions.edges.map((e: any) => e.node.id);
    expect(pageIds).toEqual(ids.iris!.slice(-10).reverse());

    statements.length = 0;
    const again = await execute({ schema, document: parse(byIds(pageIds)), contextValue: context });
    expect(again.errors).toBeUndefined();
    expect(statements).toEqual([]);
    expect(Object.values(again.data!)).toEqual(pageIds.map((id: string) => ({ id, modelName: 'iris', model: { name: 'iris' } })));
  });
});
