import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GraphQLResponse, type TestGateway } from './helpers/gateway.ts';

let gw: TestGateway;
const statements: string[] = [];
const ids: Record<string, string[]> = { iris: [], diabetes: [] };
let midpoint: string;

const predictIris = (features: number[]) =>
  gw.gql(`mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id createdAt } }`, { f: features });
const predictDiabetes = () =>
  gw.gql(`mutation { predict(input: { model: "diabetes", features: [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87] }) { id createdAt } }`);

beforeAll(async () => {
  gw = await startGateway({ onQuery: (sql) => statements.push(sql) });
  for (let i = 0; i < 30; i++) {
    const res = await predictIris([5 + (i % 10) / 10, 3.4, 1.4, 0.2]);
    ids.iris!.push(res.body.data.predict.id);
    if (i === 14) {
      await new Promise((r) => setTimeout(r, 5));
      midpoint = new Date().toISOString();
      await new Promise((r) => setTimeout(r, 5));
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

describe('DataLoader', () => {
  const NESTED = `query($first: Int) {
    predictions(first: $first) {
      edges { node { id label scores(top: 1) { label } model { name kind labels defaultVersion { version inputs { name } }
        versions { version status outputs { name shape } } } } }
    }
  }`;

  async function statementsFor(query: string, variables: Record<string, unknown>): Promise<number> {
    statements.length = 0;
    const res = await gw.gql(query, variables);
    expect(res.body.errors).toBeUndefined();
    return statements.length;
  }

  it('predictions(first: 50) with nested model and version fields runs a constant number of statements', async () => {
    for (let i = 0; i < 20; i++) await predictDiabetes(); // 55 rows in all
    const small = await statementsFor(NESTED, { first: 2 });
    statements.length = 0;
    const res = await gw.gql(NESTED, { first: 50 });
    expect(res.body.data.predictions.edges).toHaveLength(50);
    expect(statements).toHaveLength(small);
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^SELECT/);
  });

  it('batches many prediction(id) lookups in one operation into one statement', async () => {
    const aliases = ids.iris!.slice(0, 10).map((id, i) => `p${i}: prediction(id: "${id}") { id model { name } }`).join('\n');
    expect(await statementsFor(`{ ${aliases} }`, {})).toBe(1);
  });
});
