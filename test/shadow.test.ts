import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../src/auth/principal.ts';
import type { ModelEvent } from '../src/inference/model-events.ts';
import type { ServedVersion } from '../src/inference/types.ts';
import { createHistory } from '../src/serving/history.ts';
import { createPredictionService } from '../src/serving/predict.ts';
import { createShadowTraffic } from '../src/serving/shadow.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { p95Offset } from '../src/store/shadow-repository.ts';
import { loadDiabetes, loadIris } from '../scripts/models/datasets.ts';
import { createTestApp, type TestApp } from './helpers/app.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeIrisManifest, writeIrisVersion } from './helpers/iris-versions.ts';
import { onPublish } from './helpers/observe.ts';
import { createTestKey } from './helpers/api-keys.ts';

/**
 * Shadow traffic through the real server on both databases, with API keys (AUTH_MODE=required).
 * The repository: iris 1 (the shipped model, serving by default), 2 `constant` (always
 * virginica), 3 `failing` (every run throws), 4 `same`, 5 `same` (unloaded by a test); diabetes
 * 1 and 2 (the same regressor twice); fortune (a generator).
 */

const iris = loadIris();
const diabetes = loadDiabetes();
const rowsOf = (n: number, step = 7) => Array.from({ length: n }, (_, i) => iris.x[(i * step + 3) % iris.x.length]!);

let repo: string;
let gw: TestGateway;
const statements: string[] = [];
const events: ModelEvent[] = [];
type Key = Awaited<ReturnType<typeof createKey>>;
let a: Key;
let b: Key;
let readOnly: Key;
let admin: Key;

async function createKey(name: string, scopes: Scope[]) {
  return createTestKey(gw.app.db, name, scopes);
}

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), 'shadow-'));
  writeIrisManifest(repo, 'iris', { defaultVersion: 1 });
  writeIrisVersion(repo, 1, 'same');
  writeIrisVersion(repo, 2, 'constant');
  writeIrisVersion(repo, 3, 'failing');
  writeIrisVersion(repo, 4, 'same');
  writeIrisVersion(repo, 5, 'same');
  cpSync('models/diabetes', join(repo, 'diabetes'), { recursive: true });
  cpSync('models/diabetes/1', join(repo, 'diabetes', '2'), { recursive: true });
  cpSync('models/fortune', join(repo, 'fortune'), { recursive: true });
  gw = await startGateway({ modelRepository: repo, env: { AUTH_MODE: 'required' }, onQuery: (sql) => statements.push(sql) });
  onPublish(gw.app.bus, (topic, payload) => {
    if (topic === 'model.event') events.push(payload as ModelEvent);
  });
  a = await createKey('a', ['predict', 'read']);
  b = await createKey('b', ['predict', 'read']);
  readOnly = await createKey('r', ['read']);
  admin = await createKey('admin', ['admin']);
});
afterAll(async () => {
  await gw.close();
  rmSync(repo, { recursive: true, force: true });
});

const SET = 'mutation($m: String!, $v: Int!) { setShadow(model: $m, version: $v) { model version runs failures dropped } }';
const CLEAR = 'mutation($m: String!) { clearShadow(model: $m) { model version runs failures dropped writeErrors outstanding } }';
const COMPARE = `query($m: String!, $a: Int!, $b: Int!, $since: DateTime) {
  modelComparison(model: $m, a: $a, b: $b, since: $since) {
    model a b since count failed agreement meanAbsoluteDifference primaryLatency { meanMs p95Ms } shadowLatency { meanMs p95Ms }
  }
}`;
const READ = `query($id: ID!) { prediction(id: $id) {
  id version label latencyMs createdAt outputs { name shape data }
  shadow { version createdAt label error latencyMs meanAbsoluteDifference labelsAgree outputs { name datatype shape data } }
} }`;

async function setShadow(model: string, version: number) {
  const res = await gw.gql(SET, { m: model, v: version }, { headers: admin.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.setShadow;
}

async function clearShadow(model: string) {
  await gw.app.shadow.idle();
  const res = await gw.gql(CLEAR, { m: model }, { headers: admin.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.clearShadow;
}

async function predict(model: string, features: number[], key: Key, version?: number) {
  const res = await gw.gql('mutation($m: String!, $f: [Float!]!, $v: Int) { predict(input: { model: $m, features: $f, version: $v }) { id version label value outputs { name shape data } } }', { m: model, f: features, v: version }, { headers: key.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.predict as { id: string; version: number; label: string | null; value: number | null; outputs: Array<{ name: string; shape: number[]; data: number[] }> };
}

async function read(id: string, key: Key) {
  const res = await gw.gql(READ, { id }, { headers: key.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.prediction;
}

async function compare(model: string, primary: number, shadow: number, key: Key, since?: string) {
  const res = await gw.gql(COMPARE, { m: model, a: primary, b: shadow, since }, { headers: key.headers });
  expect(res.body.errors).toBeUndefined();
  return res.body.data.modelComparison;
}

const shadowRows = () => gw.query<{ n: number }>('SELECT COUNT(*) AS "n" FROM "ShadowResult"').then((rows) => rows[0]!.n);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const p95 = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.ceil(0.95 * xs.length) - 1]!;

describe('setShadow and clearShadow', () => {
  it('refuse an unknown model or version (MODEL_NOT_FOUND), a version not READY (MODEL_NOT_READY), the default version and a generator (BAD_USER_INPUT)', async () => {
    expect((await gw.gql('mutation { unloadModel(name: "iris", version: 5) { status } }', undefined, { headers: admin.headers })).body.data.unloadModel.status).toBe('UNLOADED');
    const refusal = async (model: string, version: number) => {
      const res = await gw.gql(SET, { m: model, v: version }, { headers: admin.headers });
      expect(res.body.data ?? null).toBeNull();
      return { code: res.body.errors?.[0]?.extensions?.code, message: res.body.errors?.[0]?.message };
    };
    expect(await refusal('tulip', 1)).toEqual({ code: 'MODEL_NOT_FOUND', message: 'Model `tulip` is not in the model repository' });
    expect(await refusal('iris', 9)).toEqual({ code: 'MODEL_NOT_FOUND', message: 'Model `iris` has no version 9' });
    expect(await refusal('iris', 5)).toEqual({ code: 'MODEL_NOT_READY', message: 'Model `iris` version 5 is not ready (UNLOADED: unloadModel)' });
    expect(await refusal('iris', 1)).toEqual({ code: 'BAD_USER_INPUT', message: 'Invalid input: version: version 1 serves `iris` by default; a shadow must be another version' });
    expect(await refusal('fortune', 1)).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(gw.app.shadow.get('iris')).toBeUndefined();
    const unknown = await gw.gql(CLEAR, { m: 'tulip' }, { headers: admin.headers });
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    expect(events.filter((e) => e.type === 'TRAFFIC')).toEqual([]);
  });

  it('need the admin scope; modelComparison the read scope', async () => {
    for (const key of [a, readOnly]) {
      const set = await gw.gql(SET, { m: 'iris', v: 2 }, { headers: key.headers });
      expect(set.status).toBe(403);
      expect(set.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['admin'] });
      expect((await gw.gql(CLEAR, { m: 'iris' }, { headers: key.headers })).body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['admin'] });
    }
    const predictOnly = await createKey('p', ['predict']);
    const refused = await gw.gql(COMPARE, { m: 'iris', a: 1, b: 2 }, { headers: predictOnly.headers });
    expect(refused.body.errors?.[0]?.extensions).toEqual({ code: 'FORBIDDEN', scopes: ['read'] });
    expect(gw.app.shadow.get('iris')).toBeUndefined();
  });
});

describe('a constant shadow (iris 2) behind iris 1', () => {
  const made: Array<{ id: string; label: string; features: number[] }> = [];

  it('stores a shadow result for every answered predict, equal to what version 2 answers when asked directly', async () => {
    expect(await setShadow('iris', 2)).toEqual({ model: 'iris', version: 2, runs: 0, failures: 0, dropped: 0 });
    expect(events.filter((e) => e.type === 'TRAFFIC')).toMatchObject([{ model: 'iris', version: 2, reason: 'shadow: version 2' }]);
    const rowsBefore = await shadowRows();
    for (const features of rowsOf(24)) {
      const p = await predict('iris', features, a);
      expect(p.version).toBe(1);
      made.push({ id: p.id, label: p.label!, features });
    }
    await gw.app.shadow.idle();
    expect(await shadowRows()).toBe(rowsBefore + made.length);
    const stored = await gw.query<{ predictionId: string; version: number; shadowVersion: number; apiKeyId: string }>('SELECT "predictionId", "version", "shadowVersion", "apiKeyId" FROM "ShadowResult" ORDER BY "predictionId"');
    expect(stored).toEqual(made.map((p) => ({ predictionId: p.id, version: 1, shadowVersion: 2, apiKeyId: a.id })).sort((x, y) => (x.predictionId < y.predictionId ? -1 : 1)));

    for (const p of made.slice(0, 6)) {
      const got = await read(p.id, a);
      // Asked directly (the shadow version named): that request is not mirrored onto itself.
      const direct = await predict('iris', p.features, admin, 2);
      expect(direct.version).toBe(2);
      expect(got.shadow).toMatchObject({ version: 2, label: 'virginica', error: null, outputs: [{ name: direct.outputs[0]!.name, datatype: 'FP32', shape: direct.outputs[0]!.shape, data: direct.outputs[0]!.data }] });
      expect(got.shadow.outputs.map((o: { data: number[] }) => o.data)).toEqual(direct.outputs.map((o) => o.data));
      expect(got.shadow.labelsAgree).toBe(p.label === 'virginica');
      const difference = mean(got.outputs[0].data.map((x: number, i: number) => Math.abs(x - direct.outputs[0]!.data[i]!)));
      expect(got.shadow.meanAbsoluteDifference).toBeCloseTo(difference, 12);
      expect(got.shadow.latencyMs).toBeGreaterThan(0);
      expect(Date.parse(got.shadow.createdAt)).toBeGreaterThanOrEqual(Date.parse(got.createdAt));
    }
    await gw.app.shadow.idle();
    expect(await shadowRows()).toBe(rowsBefore + made.length);
    expect(gw.app.shadow.get('iris')).toMatchObject({ runs: made.length, failures: 0, dropped: 0, writeErrors: 0, outstanding: 0 });
  });

  it('modelComparison equals the figures computed by hand from the stored rows, in one aggregate query and one per p95', async () => {
    const rows = await gw.query<{ predictionId: string; latencyMs: number; primaryLatencyMs: number; meanAbsoluteDifference: number }>(
      'SELECT "predictionId", "latencyMs", "primaryLatencyMs", "meanAbsoluteDifference" FROM "ShadowResult" WHERE "modelName" = $1 AND "version" = $2 AND "shadowVersion" = $3',
      ['iris', 1, 2],
    );
    expect(rows).toHaveLength(made.length);
    const served = await gw.query<{ id: string; latencyMs: number }>(`SELECT "id", "latencyMs" FROM "Prediction" WHERE "id" IN (${made.map((_, i) => `$${i + 1}`).join(', ')})`, made.map((p) => p.id));
    const agreement = made.filter((p) => p.label === 'virginica').length / made.length;
    expect(agreement).toBeGreaterThan(0);
    expect(agreement).toBeLessThan(1);

    const from = statements.length;
    const c = await compare('iris', 1, 2, admin);
    const sent = statements.slice(from).filter((sql) => sql.includes('ShadowResult') || sql.includes('Prediction'));
    expect(sent).toHaveLength(3);
    expect(sent[0]).toMatch(/GROUP BY/i);
    expect(sent.every((sql) => !/"Prediction"/.test(sql))).toBe(true); // the history is not read

    expect(c).toMatchObject({ model: 'iris', a: 1, b: 2, since: null, count: made.length, failed: 0 });
    expect(c.agreement).toBeCloseTo(agreement, 12);
    expect(c.meanAbsoluteDifference).toBeCloseTo(mean(rows.map((r) => r.meanAbsoluteDifference)), 12);
    expect(c.meanAbsoluteDifference).toBeGreaterThan(0);
    // The primary's latency is the prediction's own, copied in.
    expect(rows.map((r) => r.primaryLatencyMs).sort()).toEqual(served.map((r) => r.latencyMs).sort());
    expect(c.primaryLatency.meanMs).toBeCloseTo(mean(served.map((r) => r.latencyMs)), 9);
    expect(c.primaryLatency.p95Ms).toBe(p95(served.map((r) => r.latencyMs)));
    expect(c.shadowLatency.meanMs).toBeCloseTo(mean(rows.map((r) => r.latencyMs)), 9);
    expect(c.shadowLatency.p95Ms).toBe(p95(rows.map((r) => r.latencyMs)));
    expect(p95Offset(24)).toBe(22);
    expect(p95Offset(1)).toBe(0);

    // The window is on the prediction's time, since inclusive.
    const page = await gw.gql('{ predictions(model: "iris", version: 1, first: 100) { edges { node { id createdAt } } } }', undefined, { headers: a.headers });
    const times = new Map<string, number>(page.body.data.predictions.edges.map((e: { node: { id: string; createdAt: string } }) => [e.node.id, Date.parse(e.node.createdAt)]));
    const since = times.get(made[12]!.id)!;
    const inWindow = made.filter((p) => times.get(p.id)! >= since).length;
    expect(inWindow).toBeGreaterThanOrEqual(12);
    expect(inWindow).toBeLessThan(made.length);
    expect((await compare('iris', 1, 2, admin, new Date(since).toISOString())).count).toBe(inWindow);
    expect((await compare('iris', 1, 2, admin, '2100-01-01T00:00:00Z')).count).toBe(0);
    expect(await compare('iris', 1, 4, admin)).toMatchObject({ count: 0, failed: 0, agreement: null, meanAbsoluteDifference: null, primaryLatency: { meanMs: null, p95Ms: null } });
  });

  it("follows the prediction's ownership: another key's prediction (and so its shadow) reads as null; a key's comparison counts its own pairs only", async () => {
    const mine = await predict('iris', iris.x[100]!, b);
    await gw.app.shadow.idle();
    expect((await read(mine.id, b)).shadow).toMatchObject({ version: 2, label: 'virginica', labelsAgree: mine.label === 'virginica' });
    expect((await gw.gql(READ, { id: mine.id }, { headers: a.headers })).body.data.prediction).toBeNull();
    expect((await read(mine.id, admin)).shadow.version).toBe(2);
    expect(await compare('iris', 1, 2, b)).toMatchObject({ count: 1, agreement: mine.label === 'virginica' ? 1 : 0 });
    const all = await compare('iris', 1, 2, admin);
    expect((await compare('iris', 1, 2, a)).count + 1).toBe(all.count);
  });

  it('clearShadow stops mirroring and answers with the final counters; a second clear answers null', async () => {
    const rows = await shadowRows();
    const cleared = await clearShadow('iris');
    expect(cleared).toMatchObject({ model: 'iris', version: 2, failures: 0, dropped: 0, writeErrors: 0, outstanding: 0 });
    expect(cleared.runs).toBe(made.length + 1);
    expect(events.filter((e) => e.type === 'TRAFFIC').at(-1)).toMatchObject({ model: 'iris', version: 2, reason: 'shadow: none (version 2 cleared)' });
    const p = await predict('iris', iris.x[0]!, a);
    await gw.app.shadow.idle();
    expect(await shadowRows()).toBe(rows);
    expect((await read(p.id, a)).shadow).toBeNull();
    expect(await clearShadow('iris')).toBeNull();
    expect((await gw.gql('{ model(name: "iris") { shadow { version } } }', undefined, { headers: a.headers })).body.data.model.shadow).toBeNull();
  });
});

describe('a failing shadow (iris 3)', () => {
  it('never fails the caller: every predict is answered and stored; the failures are stored with their error and counted, outside the figures', async () => {
    await setShadow('iris', 3);
    const predictionsBefore = await gw.countRows();
    const made = await Promise.all(rowsOf(16, 5).map((features) => predict('iris', features, a)));
    expect(made.map((p) => p.version)).toEqual(made.map(() => 1));
    expect(await gw.countRows()).toBe(predictionsBefore + made.length);
    await gw.app.shadow.idle();
    const shadow = (await read(made[0]!.id, a)).shadow;
    expect(shadow).toMatchObject({ version: 3, outputs: null, label: null, latencyMs: null, meanAbsoluteDifference: null, labelsAgree: null });
    expect(shadow.error).toMatch(/\S/);
    expect((await gw.gql('{ model(name: "iris") { shadow { version runs failures dropped } } }', undefined, { headers: a.headers })).body.data.model.shadow).toEqual({ version: 3, runs: 16, failures: 16, dropped: 0 });
    expect(await compare('iris', 1, 3, admin)).toMatchObject({ count: 0, failed: 16, agreement: null, meanAbsoluteDifference: null, shadowLatency: { meanMs: null, p95Ms: null } });
    await clearShadow('iris');
  });

  it('a request that fails leaves no shadow row; a deleted prediction takes its shadow row with it', async () => {
    await setShadow('iris', 2);
    const rows = await shadowRows();
    const refused = await gw.gql('mutation { predict(input: { model: "iris", features: [1, 2, 3] }) { id } }', undefined, { headers: a.headers });
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const p = await predict('iris', iris.x[7]!, a);
    await gw.app.shadow.idle();
    expect(await shadowRows()).toBe(rows + 1);
    await gw.query('DELETE FROM "Prediction" WHERE "id" = $1', [p.id]);
    expect(await shadowRows()).toBe(rows);
    await clearShadow('iris');
  });
});

describe('a regressor shadow (diabetes 2, the same model as 1)', () => {
  it('agreement is null; the mean absolute difference is 0', async () => {
    await setShadow('diabetes', 2);
    for (const x of diabetes.x.slice(0, 5)) expect((await predict('diabetes', x, a)).version).toBe(1);
    await gw.app.shadow.idle();
    const c = await compare('diabetes', 1, 2, admin);
    expect(c).toMatchObject({ count: 5, failed: 0, agreement: null, meanAbsoluteDifference: 0 });
    await clearShadow('diabetes');
  });
});

/**
 * The shadow path with its run held at a gate: the caller's answer does not wait for it, and
 * SHADOW_MAX_OUTSTANDING bounds the runs held (the rest are dropped and counted, not queued).
 * On the app's own models and database; the shadow version's `run` is wrapped by the test.
 */
describe('off the response path, with a bound', () => {
  let app: TestApp;
  let gateRepo: string;

  beforeAll(async () => {
    gateRepo = mkdtempSync(join(tmpdir(), 'shadow-gate-'));
    writeIrisManifest(gateRepo, 'iris', { defaultVersion: 1 });
    writeIrisVersion(gateRepo, 1, 'same');
    writeIrisVersion(gateRepo, 2, 'constant');
    app = await createTestApp({ modelRepository: gateRepo });
  });
  afterAll(async () => {
    await app.close();
    rmSync(gateRepo, { recursive: true, force: true });
  });

  function gated(maxOutstanding: number) {
    const { models, db, bus } = app.app;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let shadowRuns = 0;
    const served = models.resolve('iris', 2);
    const held: ServedVersion = Object.create(served, {
      run: {
        value: async (...args: Parameters<ServedVersion['run']>) => {
          shadowRuns++;
          await gate;
          return served.run(...args);
        },
      },
    });
    const store = app.app.shadowStore;
    const shadow = createShadowTraffic(
      { models: { get: (name) => models.get(name), resolve: (name, version) => (version === 2 ? held : models.resolve(name, version)) }, store, publish: () => {}, log: pino({ level: 'silent' }) },
      { maxOutstanding },
    );
    const predictions = createPredictionRepository(db, { writer: app.app.historyWriter });
    const service = createPredictionService({ models, history: createHistory({ store: predictions, bus }), shadow });
    shadow.set('iris', 2);
    return { shadow, service, store, open, runs: () => shadowRuns };
  }

  it("answers the caller while the shadow's run is held; the result is stored once it ends", async () => {
    const { shadow, service, store, open, runs } = gated(64);
    const made = [];
    for (const features of rowsOf(5)) made.push(await service.predict({ model: 'iris', features }));
    expect(made.map((p) => p.version)).toEqual([1, 1, 1, 1, 1]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs()).toBe(5); // all five started, none finished
    expect(shadow.get('iris')).toMatchObject({ runs: 5, outstanding: 5 });
    expect(await store.findByPredictionIds(made.map((p) => p.id))).toEqual(made.map(() => undefined));
    open();
    await shadow.idle();
    expect((await store.findByPredictionIds(made.map((p) => p.id))).map((r) => r?.label)).toEqual(made.map(() => 'virginica'));
    expect(shadow.get('iris')).toMatchObject({ runs: 5, outstanding: 0, dropped: 0 });
  });

  it('drops (and counts) the requests beyond SHADOW_MAX_OUTSTANDING instead of queueing them', async () => {
    const { shadow, service, store, open, runs } = gated(2);
    const made = [];
    for (const features of rowsOf(6)) made.push(await service.predict({ model: 'iris', features }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(shadow.get('iris')).toMatchObject({ runs: 2, dropped: 4, outstanding: 2 });
    expect(runs()).toBe(2);
    open();
    await shadow.idle();
    expect((await store.findByPredictionIds(made.map((p) => p.id))).map((r) => r !== undefined)).toEqual([true, true, false, false, false, false]);
    // Room again once they are stored.
    await service.predict({ model: 'iris', features: iris.x[0]! });
    await shadow.idle();
    expect(shadow.get('iris')).toMatchObject({ runs: 3, dropped: 4, outstanding: 0 });
  });

  it("a shadow run leaves the bound once answered: rows waiting for their commit do not cause drops", async () => {
    const { models, db, bus } = app.app;
    let release!: () => void;
    const commitHeld = new Promise<void>((resolve) => (release = resolve));
    const real = app.app.shadowStore;
    const store = { ...real, save: async (row: Parameters<typeof real.save>[0]) => (await commitHeld, real.save(row)) };
    const shadow = createShadowTraffic({ models, store, publish: () => {}, log: pino({ level: 'silent' }) }, { maxOutstanding: 1 });
    const service = createPredictionService({ models, history: createHistory({ store: createPredictionRepository(db, { writer: app.app.historyWriter }), bus }), shadow });
    shadow.set('iris', 2);
    const made = [];
    for (const features of rowsOf(4)) {
      made.push(await service.predict({ model: 'iris', features }));
      while (shadow.outstanding > 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(shadow.get('iris')).toMatchObject({ runs: 4, dropped: 0, outstanding: 0 });
    release();
    await shadow.idle();
    expect((await real.findByPredictionIds(made.map((p) => p.id))).every((r) => r?.label === 'virginica')).toBe(true);
  });
});
