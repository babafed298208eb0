import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { onPostgres } from './helpers/test-database.ts';
import { writeAdderModel } from './helpers/onnx-models.ts';

const PREDICT = `mutation($input: PredictInput!) { predict(input: $input) { id label } }`;
const iris = (rest: Record<string, unknown>) => ({ input: { model: 'iris', ...rest } });

let gw: TestGateway;
beforeAll(async () => {
  // Two shipped models, and the test adder for integer inputs.
  const repo = mkdtempSync(join(tmpdir(), 'errors-repo-'));
  for (const name of ['iris', 'digits']) cpSync(join('models', name), join(repo, name), { recursive: true });
  writeAdderModel(repo);
  gw = await startGateway({ modelRepository: repo });
});
afterAll(() => gw.close());

function issuesOf(res: Awaited<ReturnType<TestGateway['gql']>>) {
  expect(res.body.errors).toHaveLength(1);
  expect(res.body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  return res.body.errors![0]!.extensions!.issues as Array<{ path: Array<string | number>; message: string }>;
}

describe('bad input gets BAD_USER_INPUT with every issue, and stores nothing', () => {
  it.each([
    ['both features and inputs', iris({ features: [1, 2, 3, 4], inputs: [] }), [['input']]],
    ['neither features nor inputs', iris({}), [['input']]],
    ['too few features', iris({ features: [1, 2, 3] }), [['input', 'features']]],
    ['features outside the manifest range', iris({ features: [100, -1, 1.4, 0.2] }), [['input', 'features', 0], ['input', 'features', 1]]],
    [
      'unknown and missing input names',
      iris({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }),
      [['input', 'inputs', 0, 'name'], ['input', 'inputs']],
    ],
    [
      'wrong element count for the shape',
      iris({ inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 4], data: [1, 2, 3, 4] }] }),
      [['input', 'inputs', 0, 'data']],
    ],
    [
      'wrong datatype and wrong fixed dimension together',
      iris({ inputs: [{ name: 'features', datatype: 'INT64', shape: [1, 5], data: [1, 2, 3, 4, 5] }] }),
      [['input', 'inputs', 0, 'datatype'], ['input', 'inputs', 0, 'shape', 1]],
    ],
    ['negative dimension', iris({ inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4], data: [1, 2, 3, 4] }] }), [['input', 'inputs', 0, 'shape']]],
  ])('%s', async (_name, variables, paths) => {
    const before = await gw.countRows();
    const res = await gw.gql(PREDICT, variables);
    const issues = issuesOf(res);
    expect(issues.map((i) => i.path)).toEqual(paths);
    for (const issue of issues) expect(issue.message.length).toBeGreaterThan(5);
    expect(res.body.data).toBeNull(); // predict is non-null, so the null reaches data
    expect(await gw.countRows()).toBe(before);
  });

  it('names the feature and its range', async () => {
    const issues = issuesOf(await gw.gql(PREDICT, iris({ features: [5.1, 3.5, 1.4, 99] })));
    expect(issues).toEqual([{ path: ['input', 'features', 3], message: '`petal_width_cm` must be from 0 to 5, got 99' }]);
  });

  it('rejects a non-finite number sent in the variables JSON', async () => {
    const before = await gw.countRows();
    const body = `{"query":${JSON.stringify(PREDICT)},"variables":{"input":{"model":"iris","features":[1e999,3.5,1.4,0.2]}}}`;
    const res = await gw.gql('', undefined, { body });
    const issues = issuesOf(res);
    expect(issues[0]!.path).toEqual(['input', 'features', 0]);
    expect(issues[0]!.message).toMatch(/Infinity/);
    expect(await gw.countRows()).toBe(before);
  });

  it('rejects a fraction and an unsafe integer sent to an INT64 input', async () => {
    const before = await gw.countRows();
    const floats = { datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] };
    const res = await gw.gql(PREDICT, {
      input: { model: 'adder', inputs: [{ name: 'a', ...floats }, { name: 'b', ...floats }, { name: 'n', datatype: 'INT64', shape: [1, 2], data: [2.5, 2 ** 60] }] },
    });
    const range = `INT64 takes whole numbers from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`;
    expect(issuesOf(res)).toEqual([
      { path: ['input', 'inputs', 2, 'data', 0], message: `${range}, got 2.5` },
      { path: ['input', 'inputs', 2, 'data', 1], message: `${range}, got ${2 ** 60}` },
    ]);
    expect(await gw.countRows()).toBe(before);
  });

  it('validates pagination arguments', async () => {
    const issues = issuesOf(await gw.gql(`{ predictions(first: 1000) { edges { cursor } } }`));
    expect(issues).toEqual([{ path: ['first'], message: 'expected an integer from 1 to 100' }]);
    const cursor = issuesOf(await gw.gql(`{ predictions(after: "bm9wZQ") { edges { cursor } } }`));
    expect(cursor[0]!.path).toEqual(['after']);
  });
});

describe('unknown models', () => {
  it('MODEL_NOT_FOUND for an unknown model or version', async () => {
    const before = await gw.countRows();
    const res = await gw.gql(PREDICT, { input: { model: 'nope', features: [1] } });
    expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'MODEL_NOT_FOUND', model: 'nope' });
    expect(res.body.errors![0]!.message).toBe('Model `nope` is not in the model repository');
    const version = await gw.gql(PREDICT, { input: { model: 'iris', version: 7, features: [5.1, 3.5, 1.4, 0.2] } });
    expect(version.body.errors![0]!.extensions).toMatchObject({ code: 'MODEL_NOT_FOUND', version: 7 });
    expect(await gw.countRows()).toBe(before);
  });

  it('model(name) and prediction(id) are null when unknown', async () => {
    const res = await gw.gql(`{ model(name: "nope") { name } prediction(id: "0190b6c2-0000-7000-8000-000000000000") { id } }`);
    expect(res.body).toEqual({ data: { model: null, prediction: null } });
  });
});

describe('unexpected errors', () => {
  it('are masked, carry the request id that the log shows, roll back, and the server stays up', async () => {
    // A real database failure: a trigger that aborts inserts for one model.
    if (onPostgres) {
      await gw.query(`CREATE FUNCTION fail_digits() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN IF NEW."modelName" = 'digits' THEN RAISE EXCEPTION 'secret detail from the database'; END IF; RETURN NEW; END $$`);
      await gw.query(`CREATE TRIGGER fail_digits BEFORE INSERT ON "Prediction" FOR EACH ROW EXECUTE FUNCTION fail_digits()`);
    } else {
      await gw.query(`CREATE TRIGGER fail_digits BEFORE INSERT ON "Prediction" WHEN NEW."modelName" = 'digits'
                      BEGIN SELECT RAISE(ABORT, 'secret detail from the database'); END`);
    }
    const before = await gw.countRows();

    const res = await gw.gql(PREDICT, { input: { model: 'digits', features: new Array(64).fill(1) } }, {
      headers: { 'x-request-id': 'req-test-42' },
    });
    expect(res.headers.get('x-request-id')).toBe('req-test-42');
    expect(res.body.data).toBeNull(); // predict is non-null, so the null reaches data
    const error = res.body.errors![0]!;
    expect(error.message).toBe('Unexpected error.');
    expect(error.extensions).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', requestId: 'req-test-42' });
    expect(JSON.stringify(res.body)).not.toMatch(/secret|SQLite|Postgre|at .*\.ts|Prediction/);
    expect(await gw.countRows()).toBe(before);

    const logged = gw.logs.find((l) => l.requestId === 'req-test-42');
    expect(logged).toBeDefined();
    expect(logged!.msg).toBe('unexpected error');
    expect(JSON.stringify(logged!.err)).toMatch(/secret detail from the database/);

    // Still serving, and a generated request id comes back when the client sends none.
    const ok = await gw.gql(PREDICT, iris({ features: [5.1, 3.5, 1.4, 0.2] }));
    expect(ok.body.data.predict.label).toBe('setosa');
    expect(ok.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await gw.countRows()).toBe(before + 1);
  });
});

describe('operation limits', () => {
  // `__type` is an ordinary field for the depth limit (only `__schema`, the standard introspection query, is exempt).
  const nestedOfType = (levels: number) =>
    `{ __type(name: "Query") { fields { type ${'{ ofType '.repeat(levels)}{ name }${' }'.repeat(levels)} } } }`;

  it('rejects an operation nested deeper than 20 levels before running it', async () => {
    expect((await gw.gql(nestedOfType(16))).body.errors).toBeUndefined();
    const res = await gw.gql(nestedOfType(17));
    expect(res.body.data).toBeUndefined();
    expect(res.body.errors).toContainEqual(
      expect.objectContaining({ message: 'Query depth limit of 20 exceeded, found 21.', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }),
    );
  });

  it('rejects more than 50 aliases', async () => {
    const aliases = Array.from({ length: 51 }, (_, i) => `m${i}: models { name }`).join(' ');
    const res = await gw.gql(`{ ${aliases} }`);
    expect(res.body.errors![0]!).toMatchObject({ message: 'Aliases limit of 50 exceeded, found 51.', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  });

  it('answers 413 to a body over 4 MB without reading it', async () => {
    const res = await fetch(`${gw.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"query":"{ models { name } }","pad":"${'x'.repeat(4 * 1024 * 1024)}"}`,
    });
    expect(res.status).toBe(413);
    expect((await res.json()).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
  });
});
