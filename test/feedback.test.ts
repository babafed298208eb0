import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../src/auth/principal.ts';
import { loadBreastCancer, loadDiabetes, loadIris } from '../scripts/models/datasets.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { createTestKey } from './helpers/api-keys.ts';

// Feedback and live quality through the real server on both databases, with API keys
// (AUTH_MODE=required): `a` makes the predictions most tests score; `b` is another key.

const UNKNOWN_ID = '01a23792-0000-7000-8000-000000000000';
const iris = loadIris();
const diabetes = loadDiabetes();
const breastCancer = loadBreastCancer();

let gw: TestGateway;
const statements: string[] = [];
type Key = Awaited<ReturnType<typeof createKey>>;
let a: Key;
let b: Key;
let predictOnly: Key;
let readOnly: Key;
let admin: Key;

/** A key stored in the gateway's database, as `keys create` stores it. */
async function createKey(name: string, scopes: Scope[]) {
  return createTestKey(gw.app.db, name, scopes);
}

beforeAll(async () => {
  gw = await startGateway({ env: { AUTH_MODE: 'required' }, onQuery: (sql) => statements.push(sql) });
  a = await createKey('a', ['predict', 'read']);
  b = await createKey('b', ['predict', 'read']);
  predictOnly = await createKey('p', ['predict']);
  readOnly = await createKey('r', ['read']);
  admin = await createKey('admin', ['admin']);
});
afterAll(() => gw.close());

/** Predicts with `key` and reads the prediction back: its id, time and the label or value it served. */
async function predict(model: string, features: number[], key: Key) {
  const made = await gw.gql('mutation($m: String!, $f: [Float!]!) { predict(input: { model: $m, features: $f }) { id } }', { m: model, f: features }, { headers: key.headers });
  expect(made.body.errors).toBeUndefined();
  const read = await gw.gql('query($id: ID!) { prediction(id: $id) { id createdAt label value } }', { id: made.body.data.predict.id }, { headers: key.headers });
  return read.body.data.prediction as { id: string; createdAt: string; label: string | null; value: number | null };
}

const RECORD = 'mutation($id: ID!, $label: String, $value: Float) { recordFeedback(predictionId: $id, label: $label, value: $value) { id label value feedback { label value recordedAt } } }';
const record = (id: string, feedback: { label?: string; value?: number }, key: Key) => gw.gql(RECORD, { id, ...feedback }, { headers: key.headers });

const QUALITY = `query($m: String!, $since: DateTime, $until: DateTime) {
  model(name: $m) { versions { version quality(since: $since, until: $until) { count accuracy mae rmse confusionMatrix { actual predicted count } } } }
}`;
async function quality(model: string, key: Key, window: { since?: string; until?: string } = {}) {
  const res = await gw.gql(QUALITY, { m: model, ...window }, { headers: key.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.model.versions[0].quality as { count: number; accuracy: number | null; mae: number | null; rmse: number | null; confusionMatrix: Array<{ actual: string; predicted: string; count: number }> };
}

const feedbackRows = () => gw.query<{ n: number }>('SELECT COUNT(*) AS "n" FROM "Feedback"').then((rows) => rows[0]!.n);

/** Counts (actual, predicted) pairs, in the documented order: actual, then predicted label. */
function confusionOf(pairs: Array<{ actual: string; predicted: string }>) {
  const counts = new Map<string, number>();
  for (const p of pairs) counts.set(JSON.stringify([p.actual, p.predicted]), (counts.get(JSON.stringify([p.actual, p.predicted])) ?? 0) + 1);
  return [...counts.entries()]
    .map(([pair, count]) => ({ actual: JSON.parse(pair)[0] as string, predicted: JSON.parse(pair)[1] as string, count }))
    .sort((x, y) => (x.actual === y.actual ? (x.predicted < y.predicted ? -1 : 1) : x.actual < y.actual ? -1 : 1));
}

describe('classifier feedback (iris)', () => {
  // 20 iris rows spread over the three species; filled by the first test, used by the next.
  const made: Array<{ id: string; served: string; truth: string }> = [];

  it('accuracy and the confusion matrix equal the ones computed from the served labels read back, in one aggregate query', async () => {
    for (let i = 0; i < 20; i++) {
      const row = (i * 7 + 3) % iris.x.length;
      const p = await predict('iris', iris.x[row]!, a);
      made.push({ id: p.id, served: p.label!, truth: iris.labels[iris.y[row]!]! });
    }
    // A known pattern: every 4th gets a label other than the served one, every 4th + 1 the
    // species from the data set (right or wrong), the rest the served label.
    const given = made.map((p, i) => (i % 4 === 0 ? iris.labels[(iris.labels.indexOf(p.served) + 1 + (i % 8 === 0 ? 1 : 0)) % 3]! : i % 4 === 1 ? p.truth : p.served));
    for (const [i, p] of made.entries()) {
      const res = await record(p.id, { label: given[i]! }, a);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data.recordFeedback).toMatchObject({ id: p.id, label: p.served, value: null, feedback: { label: given[i], value: null } });
    }
    const expectedAccuracy = made.filter((p, i) => given[i] === p.served).length / made.length;
    expect(expectedAccuracy).toBeGreaterThan(0);
    expect(expectedAccuracy).toBeLessThan(1);

    const from = statements.length;
    const q = await quality('iris', a);
    const sent = statements.slice(from).filter((sql) => sql.includes('Feedback') || sql.includes('Prediction'));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatch(/GROUP BY/i);
    expect(sent[0]).toMatch(/COUNT\(/i);
    expect(sent[0]).not.toMatch(/Prediction/); // the history is not read

    expect(q.count).toBe(20);
    expect(q.accuracy).toBeCloseTo(expectedAccuracy, 12);
    expect(q.confusionMatrix).toEqual(confusionOf(made.map((p, i) => ({ actual: given[i]!, predicted: p.served }))));
    expect(q.confusionMatrix.reduce((n, c) => n + c.count, 0)).toBe(20);
    expect(q.confusionMatrix.length).toBeGreaterThan(3); // right and wrong cells
    expect([q.mae, q.rmse]).toEqual([null, null]);
  });

  it('recording again replaces the feedback: the prediction shows the new one and quality counts it once', async () => {
    const target = made[0]!; // given a wrong label above
    const before = await quality('iris', a);
    const rows = await feedbackRows();
    const first = (await gw.gql('query($id: ID!) { prediction(id: $id) { feedback { label recordedAt } } }', { id: target.id }, { headers: a.headers })).body.data.prediction.feedback;
    const res = await record(target.id, { label: target.served }, a);
    expect(res.body.data.recordFeedback.feedback.label).toBe(target.served);
    expect(Date.parse(res.body.data.recordFeedback.feedback.recordedAt)).toBeGreaterThanOrEqual(Date.parse(first.recordedAt));
    const read = await gw.gql('query($id: ID!) { prediction(id: $id) { feedback { label } } }', { id: target.id }, { headers: a.headers });
    expect(read.body.data.prediction.feedback).toEqual({ label: target.served });
    expect(await feedbackRows()).toBe(rows);
    const after = await quality('iris', a);
    expect(after.count).toBe(before.count);
    expect(after.accuracy).toBeCloseTo(before.accuracy! + 1 / before.count, 12);

    // Concurrent corrections: each is one atomic upsert; one row stays, holding one of them.
    const labels = ['setosa', 'versicolor', 'virginica', 'setosa', 'virginica'];
    const answers = await Promise.all(labels.map((label) => record(target.id, { label }, a)));
    expect(answers.map((r) => r.body.errors)).toEqual(labels.map(() => undefined));
    expect(await feedbackRows()).toBe(rows);
    expect(labels).toContain((await gw.query('SELECT "label" FROM "Feedback" WHERE "predictionId" = $1', [target.id]))[0]!.label);
    await record(target.id, { label: target.served }, a);
    expect(await quality('iris', a)).toEqual(after);
  });

  it('gives the traffic guard the same figures through feedback.quality(model, version, since)', async () => {
    const viaApi = await quality('iris', admin);
    const direct = await gw.app.feedback.quality('iris', 1, new Date(0));
    expect(direct).toMatchObject({ count: viaApi.count, accuracy: viaApi.accuracy, mae: null, rmse: null });
  });
});

describe('regressor feedback (diabetes)', () => {
  it('MAE and RMSE equal the ones computed from the served values read back', async () => {
    const made: Array<{ id: string; served: number; truth: number }> = [];
    for (let i = 0; i < 12; i++) {
      const row = i * 31;
      const p = await predict('diabetes', diabetes.x[row]!, a);
      made.push({ id: p.id, served: p.value!, truth: diabetes.y[row]! });
    }
    for (const p of made) expect((await record(p.id, { value: p.truth }, a)).body.data.recordFeedback.feedback.value).toBe(p.truth);
    const errors = made.map((p) => p.truth - p.served);
    const mae = errors.reduce((s, e) => s + Math.abs(e), 0) / errors.length;
    const rmse = Math.sqrt(errors.reduce((s, e) => s + e * e, 0) / errors.length);
    expect(mae).toBeGreaterThan(1);

    const q = await quality('diabetes', a);
    expect(q.count).toBe(12);
    expect(q.mae).toBeCloseTo(mae, 9);
    expect(q.rmse).toBeCloseTo(rmse, 9);
    expect(q.rmse!).toBeGreaterThan(q.mae!); // the errors are not all equal
    expect([q.accuracy, q.confusionMatrix]).toEqual([null, []]);
  });
});

describe('time window', () => {
  it("filters on the prediction's time (since inclusive, until exclusive), whenever the feedback was recorded", async () => {
    const early = [await predict('breast_cancer', breastCancer.x[0]!, b), await predict('breast_cancer', breastCancer.x[0]!, b)];
    const midpoint = await clockPast(early.at(-1)!.createdAt);
    const late = [await predict('breast_cancer', breastCancer.x[0]!, b), await predict('breast_cancer', breastCancer.x[0]!, b), await predict('breast_cancer', breastCancer.x[0]!, b)];
    // All feedback is recorded after the midpoint, the early predictions' last.
    for (const p of [...late, ...early]) expect((await record(p.id, { label: p.label! }, b)).body.errors).toBeUndefined();
    expect((await quality('breast_cancer', b, { since: midpoint })).count).toBe(late.length);
    expect((await quality('breast_cancer', b, { until: midpoint })).count).toBe(early.length);
    expect((await quality('breast_cancer', b, { since: early[0]!.createdAt, until: late[0]!.createdAt })).count).toBe(early.length);
    expect((await quality('breast_cancer', b, { since: late.at(-1)!.createdAt })).count).toBe(1);
    expect(await quality('breast_cancer', b)).toMatchObject({ count: 5, accuracy: 1 });
  });
});

describe('ownership and scopes', () => {
  it("another key's prediction is NOT_FOUND, exactly like an unknown id, and nothing is stored; admin may record on it", async () => {
    const p = await predict('iris', iris.x[0]!, a);
    const rows = await feedbackRows();
    const answer = async (id: string, key: Key) => JSON.stringify((await record(id, { label: 'setosa' }, key)).body).replaceAll(id, '<id>');
    expect(await answer(p.id, b)).toBe(await answer(UNKNOWN_ID, b));
    expect(await answer(p.id, b)).toContain('"code":"NOT_FOUND"');
    expect(await feedbackRows()).toBe(rows);

    const byAdmin = await record(p.id, { label: 'virginica' }, admin);
    expect(byAdmin.body.data.recordFeedback.feedback.label).toBe('virginica');
    const stored = await gw.query('SELECT "apiKeyId", "recordedBy", "modelName", "version", "servedLabel" FROM "Feedback" WHERE "predictionId" = $1', [p.id]);
    expect(stored).toEqual([{ apiKeyId: a.id, recordedBy: admin.id, modelName: 'iris', version: 1, servedLabel: p.label }]);
    const line = gw.logs.findLast((l) => l.msg === 'graphql operation' && l.fields?.[0] === 'recordFeedback');
    expect(line).toMatchObject({ outcome: 'ok', keyId: admin.id, model: 'iris', version: 1 });
  });

  it("quality counts a key's own predictions only; admin's counts every key's", async () => {
    const p = await predict('iris', iris.x[60]!, b);
    expect((await record(p.id, { label: p.label! }, b)).body.errors).toBeUndefined();
    const ofB = await quality('iris', b);
    expect(ofB).toMatchObject({ count: 1, accuracy: 1, confusionMatrix: [{ actual: p.label, predicted: p.label, count: 1 }] });
    const ofA = await quality('iris', a);
    const all = await quality('iris', admin);
    expect(all.count).toBe(ofA.count + ofB.count);
    expect(await gw.app.feedback.quality('iris', 1, null)).toMatchObject({ count: all.count, accuracy: all.accuracy });
    expect(await gw.app.feedback.quality('iris', 1, null, { apiKeyId: b.id })).toMatchObject({ count: 1 });
  });

  it('recordFeedback needs the predict scope, quality the read scope', async () => {
    const made = await gw.gql('mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id label } }', undefined, { headers: predictOnly.headers });
    const { id, label } = made.body.data.predict;
    // A key that may predict may give feedback on its predictions, without the read scope.
    expect((await record(id, { label }, predictOnly)).body.data.recordFeedback.feedback.label).toBe(label);
    const refusedQuality = await gw.gql(QUALITY, { m: 'iris' }, { headers: predictOnly.headers });
    expect(refusedQuality.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['read'] });
    const refusedRecord = await record(id, { label }, readOnly);
    expect(refusedRecord.status).toBe(403);
    expect(refusedRecord.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['predict'] });
  });
});

describe('one query for many versions', () => {
  it("every model's versions' quality in one operation is one aggregate query per distinct window, with each version's own figures", async () => {
    const one = async (model: string) => quality(model, admin);
    const expected = Object.fromEntries(await Promise.all(['breast_cancer', 'diabetes', 'digits', 'fortune', 'iris'].map(async (m) => [m, await one(m)] as const)));
    expect(expected['iris']!.count).toBeGreaterThan(0);
    expect(expected['diabetes']!.count).toBeGreaterThan(0);
    expect(expected['fortune']).toEqual({ count: 0, accuracy: null, mae: null, rmse: null, confusionMatrix: [] });
    const from = statements.length;
    const res = await gw.gql(
      '{ models { name versions { all: quality { count accuracy mae rmse confusionMatrix { actual predicted count } } recent: quality(since: "2100-01-01T00:00:00Z") { count } } } }',
      undefined,
      { headers: admin.headers },
    );
    expect(res.body.errors).toBeUndefined();
    const sent = statements.slice(from).filter((sql) => sql.includes('Feedback'));
    expect(sent).toHaveLength(2); // the window without bounds, and the one since 2100
    expect(sent.every((sql) => /GROUP BY/i.test(sql))).toBe(true);
    for (const m of res.body.data.models as Array<{ name: string; versions: Array<{ all: unknown; recent: { count: number } }> }>) {
      expect(m.versions[0]!.all, m.name).toEqual(expected[m.name]);
      expect(m.versions[0]!.recent.count).toBe(0);
    }
  });
});

describe('validation', () => {
  it('refuses wrong feedback with BAD_USER_INPUT naming the argument, and stores nothing', async () => {
    const flower = await predict('iris', iris.x[2]!, a);
    const sugar = await predict('diabetes', diabetes.x[2]!, a);
    const text = (await gw.gql('mutation { generate(input: { model: "fortune", prompt: "The ", maxTokens: 2, seed: 1 }) { prediction { id } } }', undefined, { headers: a.headers })).body.data.generate.prediction.id as string;
    const rows = await feedbackRows();
    const issues = async (id: string, feedback: { label?: string; value?: number }) => {
      const res = await record(id, feedback, a);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.body.data ?? null).toBeNull();
      return res.body.errors![0]!.extensions!.issues;
    };
    expect(await issues(flower.id, { label: 'rose' })).toEqual([{ path: ['label'], message: 'expected one of `setosa`, `versicolor`, `virginica`, got `rose`' }]);
    expect(await issues(flower.id, {})).toEqual([{ path: ['label'], message: 'expected the true label, one of `setosa`, `versicolor`, `virginica`' }]);
    expect(await issues(flower.id, { label: 'setosa', value: 1 })).toEqual([{ path: ['value'], message: 'a CLASSIFIER prediction takes `label`, not `value`' }]);
    expect(await issues(sugar.id, {})).toEqual([{ path: ['value'], message: 'expected the true value, a finite number' }]);
    expect(await issues(sugar.id, { value: 100, label: 'high' })).toEqual([{ path: ['label'], message: 'a REGRESSOR prediction takes `value`, not `label`' }]);
    expect(await issues(text, { label: 'x' })).toEqual([
      { path: ['predictionId'], message: `prediction \`${text}\` is from a GENERATOR model (\`fortune\`); feedback needs a CLASSIFIER or REGRESSOR prediction` },
    ]);
    // JSON cannot carry NaN; 1e999 parses as Infinity, which GraphQL's Float refuses before the resolver.
    const infinite = await gw.gql('', undefined, { headers: a.headers, body: `{"query":${JSON.stringify(RECORD)},"variables":{"id":"${sugar.id}","value":1e999}}` });
    expect(infinite.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await feedbackRows()).toBe(rows);
  });
});

/** Waits for the clock to pass `time` (createdAt has millisecond resolution) and returns the first instant after it. */
async function clockPast(time: string): Promise<string> {
  while (Date.now() <= Date.parse(time)) await new Promise((r) => setImmediate(r));
  return new Date().toISOString();
}
