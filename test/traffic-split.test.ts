import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { ModelEvent } from '../src/inference/model-events.ts';
import { guardVerdict, OutcomeWindow } from '../src/inference/rollout-guard.ts';
import { ModelRepository } from '../src/inference/repository.ts';
import { createTrafficRouter, pickByWeight, routePoint } from '../src/inference/traffic.ts';
import { newId } from '../src/serving/ids.ts';
import { loadIris } from '../scripts/models/datasets.ts';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeIrisManifest, writeIrisVersion } from './helpers/iris-versions.ts';
import { createTestKey } from './helpers/api-keys.ts';

// Traffic splits between versions, routed by request id, and rollout guards, on a real
// server with iris versions written for the test (helpers/iris-versions.ts).

const iris = loadIris();
const PREDICT = 'mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id version label } }';
const SET = 'mutation($s: [TrafficWeightInput!]!, $g: RolloutGuardInput) { setTrafficSplit(model: "iris", split: $s, guard: $g) { trafficSplit { weights { version weight } source guard { metric stableVersion threshold minSamples } } } }';
const EVENTS = 'subscription { modelEvents(model: "iris") { type version reason split { version weight } } }';

describe('routing by weight (unit)', () => {
  it('2,000 request ids share 80/20 and 50/30/20 splits within 5 percentage points of the weights', () => {
    for (const weights of [
      [
        { version: 1, weight: 4 },
        { version: 2, weight: 1 },
      ],
      [
        { version: 1, weight: 0.5 },
        { version: 2, weight: 0.3 },
        { version: 3, weight: 0.2 },
      ],
    ]) {
      const total = weights.reduce((s, w) => s + w.weight, 0);
      const counts = new Map<number, number>();
      for (let i = 0; i < 2000; i++) {
        const v = pickByWeight(weights, routePoint('iris', newId()))!;
        counts.set(v, (counts.get(v) ?? 0) + 1);
      }
      for (const w of weights) expect(Math.abs((counts.get(w.version) ?? 0) / 2000 - w.weight / total)).toBeLessThan(0.05);
    }
  });

  it('never picks a version of weight 0, and the same key always picks the same version', () => {
    const weights = [
      { version: 1, weight: 0 },
      { version: 2, weight: 1 },
      { version: 3, weight: 0 },
    ];
    for (let i = 0; i < 500; i++) expect(pickByWeight(weights, routePoint('iris', `r${i}`))).toBe(2);
    const split = [
      { version: 1, weight: 1 },
      { version: 2, weight: 1 },
    ];
    for (let i = 0; i < 200; i++) expect(pickByWeight(split, routePoint('iris', `r${i}`))).toBe(pickByWeight(split, routePoint('iris', `r${i}`)));
  });

  it("a version that is not READY takes no share: the router skips it", () => {
    const router = createTrafficRouter({ log: pino({ level: 'silent' }) });
    router.set('m', [
      { version: 1, weight: 1 },
      { version: 2, weight: 1 },
    ], null);
    for (let i = 0; i < 300; i++) expect(router.pick('m', `k${i}`, (v) => v === 1)).toBe(1);
    expect(router.pick('other', 'k', () => true)).toBeUndefined();
  });

  it('the P95_LATENCY guard compares nearest-rank p95s and waits for minSamples on both versions', async () => {
    const window = new OutcomeWindow();
    const guard = { metric: 'P95_LATENCY' as const, stableVersion: 1, threshold: 0.5, minSamples: 20 };
    for (let i = 1; i <= 20; i++) window.add(1, true, i); // p95 = 19
    for (let i = 1; i <= 19; i++) window.add(2, true, 100);
    const early = await guardVerdict(guard, { model: 'm', candidate: 2, since: new Date(), window });
    expect(early).toMatchObject({ worse: false, reason: expect.stringContaining('too few samples') });
    window.add(2, true, 28); // candidate p95 = 100 > 19 × 1.5
    expect(await guardVerdict(guard, { model: 'm', candidate: 2, since: new Date(), window })).toMatchObject({ worse: true, reason: expect.stringContaining('100.00 ms against 19.00 ms') });
    const close = new OutcomeWindow();
    for (let i = 1; i <= 20; i++) {
      close.add(1, true, i);
      close.add(2, true, i * 1.4);
    }
    expect((await guardVerdict(guard, { model: 'm', candidate: 2, since: new Date(), window: close })).worse).toBe(false);
  });
});

describe('traffic splits on a real server', () => {
  let repo: string;
  let gw: TestGateway;
  let admin: Record<string, string>;
  let reader: Record<string, string>;

  async function key(scopes: Array<'predict' | 'read' | 'admin'>) {
    return (await createTestKey(gw.app.db, scopes.join('+'), scopes)).headers;
  }

  /** predict with a request id of our own (the routing key); answers version and label, or the error code. */
  async function predict(requestId: string, row = 0) {
    const res = await gw.gql(PREDICT, { f: iris.x[row] }, { headers: { ...admin, 'x-request-id': requestId } });
    return { status: res.status, version: res.body.data?.predict?.version as number | undefined, id: res.body.data?.predict?.id as string | undefined, label: res.body.data?.predict?.label as string | undefined, code: res.body.errors?.[0]?.extensions?.code as string | undefined };
  }

  beforeAll(async () => {
    repo = mkdtempSync(join(tmpdir(), 'traffic-'));
    writeIrisVersion(repo, 1, 'same');
    writeIrisVersion(repo, 2, 'same');
    writeIrisVersion(repo, 3, 'failing');
    writeIrisVersion(repo, 4, 'constant');
    writeIrisVersion(repo, 5, 'slow');
    // Version 4 stays the default (the newest READY one would be 5).
    writeIrisManifest(repo, 'iris', { defaultVersion: 4 });
    gw = await startGateway({ modelRepository: repo, env: { AUTH_MODE: 'required' } });
    admin = await key(['admin']);
    reader = await key(['predict', 'read']);
  }, 60_000);
  afterAll(() => gw.close());

  it('setTrafficSplit needs the admin scope and refuses splits it cannot follow, with codes', async () => {
    const forbidden = await gw.gql(SET, { s: [{ version: 1, weight: 1 }] }, { headers: reader });
    expect(forbidden.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const cases: Array<[unknown, unknown, string]> = [
      [[{ version: 9, weight: 1 }], null, 'MODEL_NOT_FOUND'],
      [[{ version: 1, weight: 0 }], null, 'BAD_USER_INPUT'],
      [[{ version: 1, weight: -1 }, { version: 2, weight: 1 }], null, 'BAD_USER_INPUT'],
      [[{ version: 1, weight: 1 }, { version: 1, weight: 1 }], null, 'BAD_USER_INPUT'],
      [[{ version: 2, weight: 1 }], { metric: 'ERROR_RATE', stableVersion: 1, threshold: 0.1 }, 'BAD_USER_INPUT'],
    ];
    for (const [s, g, code] of cases) expect((await gw.gql(SET, { s, g }, { headers: admin })).body.errors?.[0]?.extensions?.code).toBe(code);
    expect((await gw.gql('{ model(name: "iris") { trafficSplit { source } } }', {}, { headers: admin })).body.data.model.trafficSplit).toBeNull();
  });

  it('2,000 requests follow an 80/20 split within 5 percentage points, announced by a TRAFFIC event; a retry with the same request id lands on the same version', async () => {
    const ws = wsClient(gw.url, { authorization: admin.authorization });
    const events = subscribeWs<{ modelEvents: ModelEvent }>(ws, EVENTS);
    await new Promise((r) => setTimeout(r, 200));
    const set = await gw.gql(SET, { s: [{ version: 1, weight: 80 }, { version: 2, weight: 20 }] }, { headers: admin });
    expect(set.body.errors).toBeUndefined();
    expect(set.body.data.setTrafficSplit.trafficSplit).toMatchObject({ source: 'MUTATION', guard: null, weights: [{ version: 1, weight: 80 }, { version: 2, weight: 20 }] });
    await events.waitFor(1);
    expect(events.events[0]!.data!.modelEvents).toMatchObject({ type: 'TRAFFIC', split: [{ version: 1, weight: 80 }, { version: 2, weight: 20 }] });
    events.unsubscribe();
    await ws.dispose();

    const ids = Array.from({ length: 2000 }, (_, i) => `split-${i}`);
    const versions: number[] = [];
    for (let i = 0; i < ids.length; i += 16) versions.push(...(await Promise.all(ids.slice(i, i + 16).map(async (id) => (await predict(id)).version!))));
    const share1 = versions.filter((v) => v === 1).length / 2000;
    const share2 = versions.filter((v) => v === 2).length / 2000;
    expect(share1 + share2).toBe(1);
    expect(Math.abs(share1 - 0.8)).toBeLessThan(0.05);
    expect(Math.abs(share2 - 0.2)).toBeLessThan(0.05);
    // The stored history agrees with the answers.
    const rows = await gw.query('SELECT "version", COUNT(*) AS n FROM "Prediction" GROUP BY "version" ORDER BY "version"');
    expect(rows.map((r) => [Number(r.version), Number(r.n)])).toEqual([
      [1, versions.filter((v) => v === 1).length],
      [2, versions.filter((v) => v === 2).length],
    ]);
    for (const [i, id] of ids.slice(0, 100).entries()) expect((await predict(id)).version).toBe(versions[i]);
    // An explicit version is never rerouted.
    expect((await gw.gql('mutation { predict(input: { model: "iris", version: 2, features: [5.1, 3.5, 1.4, 0.2] }) { version } }', {}, { headers: admin })).body.data.predict.version).toBe(2);
  }, 120_000);

  it('clearTrafficSplit returns every request to the default version', async () => {
    const cleared = await gw.gql('mutation { clearTrafficSplit(model: "iris") { trafficSplit { source } defaultVersion { version } } }', {}, { headers: admin });
    expect(cleared.body.data.clearTrafficSplit).toEqual({ trafficSplit: null, defaultVersion: { version: 4 } });
    for (let i = 0; i < 50; i++) expect((await predict(`cleared-${i}`)).version).toBe(4);
  });

  it('a candidate that fails more than the stable version is rolled back by the ERROR_RATE guard, and modelEvents says why', async () => {
    const ws = wsClient(gw.url, { authorization: admin.authorization });
    const events = subscribeWs<{ modelEvents: ModelEvent }>(ws, EVENTS);
    await new Promise((r) => setTimeout(r, 200));
    const set = await gw.gql(SET, { s: [{ version: 1, weight: 1 }, { version: 3, weight: 1 }], g: { metric: 'ERROR_RATE', stableVersion: 1, threshold: 0.1, minSamples: 10 } }, { headers: admin });
    expect(set.body.data.setTrafficSplit.trafficSplit.guard).toEqual({ metric: 'ERROR_RATE', stableVersion: 1, threshold: 0.1, minSamples: 10 });
    const answers = [];
    for (let i = 0; i < 200 && !events.events.some((e) => e.data?.modelEvents.type === 'ROLLED_BACK'); i++) answers.push(await predict(`guarded-${i}`));
    const rolledBack = events.events.map((e) => e.data!.modelEvents).find((e) => e.type === 'ROLLED_BACK');
    expect(rolledBack).toMatchObject({ version: 3, split: [{ version: 1, weight: 1 }], reason: expect.stringMatching(/^error rate of version 3 is 100\.0% against 0\.0% for version 1/) });
    // Version 3 failed every run it got before the rollback (INTERNAL, masked); version 1 answered.
    expect(answers.filter((a) => a.version === undefined).length).toBeGreaterThanOrEqual(10);
    expect(answers.every((a) => a.version === 1 || a.version === undefined)).toBe(true);
    events.unsubscribe();
    await ws.dispose();
    const after = await Promise.all(Array.from({ length: 100 }, (_, i) => predict(`after-${i}`)));
    expect(after.every((a) => a.version === 1)).toBe(true);
    const split = (await gw.gql('{ model(name: "iris") { trafficSplit { weights { version weight } source guard { metric } } } }', {}, { headers: admin })).body.data.model.trafficSplit;
    expect(split).toEqual({ weights: [{ version: 1, weight: 1 }], source: 'MUTATION', guard: null });
  }, 60_000);

  it('a candidate whose p95 latency is more than twice the stable version\'s is rolled back by the P95_LATENCY guard', async () => {
    const ws = wsClient(gw.url, { authorization: admin.authorization });
    const events = subscribeWs<{ modelEvents: ModelEvent }>(ws, EVENTS);
    await new Promise((r) => setTimeout(r, 200));
    await gw.gql(SET, { s: [{ version: 1, weight: 1 }, { version: 5, weight: 1 }], g: { metric: 'P95_LATENCY', stableVersion: 1, threshold: 1, minSamples: 10 } }, { headers: admin });
    const answered: number[] = [];
    for (let i = 0; i < 300 && !events.events.some((e) => e.data?.modelEvents.type === 'ROLLED_BACK'); i++) answered.push((await predict(`slow-${i}`)).version!);
    const rolledBack = events.events.map((e) => e.data!.modelEvents).find((e) => e.type === 'ROLLED_BACK');
    expect(rolledBack).toMatchObject({ version: 5, split: [{ version: 1, weight: 1 }], reason: expect.stringMatching(/^p95 latency of version 5 is [\d.]+ ms against [\d.]+ ms for version 1/) });
    // Slow, not wrong: every request was answered, by one version or the other.
    expect(answered.filter((v) => v === 5).length).toBeGreaterThanOrEqual(10);
    expect(answered.every((v) => v === 1 || v === 5)).toBe(true);
    events.unsubscribe();
    await ws.dispose();
    for (let i = 0; i < 30; i++) expect((await predict(`slow-after-${i}`)).version).toBe(1);
  }, 60_000);

  it('a candidate less accurate by feedback is rolled back by the ACCURACY guard', async () => {
    const ws = wsClient(gw.url, { authorization: admin.authorization });
    const events = subscribeWs<{ modelEvents: ModelEvent }>(ws, EVENTS);
    await new Promise((r) => setTimeout(r, 200));
    // Version 4 always answers virginica: about a third right; version 1 (the shipped model) nearly always.
    await gw.gql(SET, { s: [{ version: 1, weight: 1 }, { version: 4, weight: 1 }], g: { metric: 'ACCURACY', stableVersion: 1, threshold: 0.2, minSamples: 15 } }, { headers: admin });
    const seen = new Map<number, { right: number; total: number }>();
    for (let i = 0; i < 400 && !events.events.some((e) => e.data?.modelEvents.type === 'ROLLED_BACK'); i++) {
      const row = (i * 37) % iris.x.length;
      const p = await predict(`accuracy-${i}`, row);
      const truth = iris.labels[iris.y[row]!]!;
      const fb = await gw.gql('mutation($id: ID!, $l: String) { recordFeedback(predictionId: $id, label: $l) { id } }', { id: p.id, l: truth }, { headers: admin });
      expect(fb.body.errors).toBeUndefined();
      const s = seen.get(p.version!) ?? { right: 0, total: 0 };
      seen.set(p.version!, { right: s.right + (p.label === truth ? 1 : 0), total: s.total + 1 });
    }
    const rolledBack = events.events.map((e) => e.data!.modelEvents).find((e) => e.type === 'ROLLED_BACK');
    expect(rolledBack).toMatchObject({ version: 4, split: [{ version: 1, weight: 1 }], reason: expect.stringContaining('accuracy of version 4') });
    expect(seen.get(4)!.total).toBeGreaterThanOrEqual(15);
    expect(seen.get(4)!.right / seen.get(4)!.total).toBeLessThan(seen.get(1)!.right / seen.get(1)!.total - 0.2);
    events.unsubscribe();
    await ws.dispose();
    for (let i = 0; i < 30; i++) expect((await predict(`accuracy-after-${i}`)).version).toBe(1);
  }, 120_000);
});

describe("model.json's traffic split", () => {
  let gw: TestGateway;
  afterAll(() => gw?.close());

  it('is in force at start, a mutation overrides it, and clearTrafficSplit brings it back', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'traffic-manifest-'));
    writeIrisManifest(repo, 'iris', { traffic: { split: [{ version: 1, weight: 1 }, { version: 2, weight: 3 }] } });
    writeIrisVersion(repo, 1, 'same');
    writeIrisVersion(repo, 2, 'same');
    gw = await startGateway({ modelRepository: repo });
    const read = async () => (await gw.gql('{ model(name: "iris") { trafficSplit { weights { version weight } source } } }')).body.data.model.trafficSplit;
    expect(await read()).toEqual({ weights: [{ version: 1, weight: 1 }, { version: 2, weight: 3 }], source: 'MANIFEST' });
    const versions = await Promise.all(Array.from({ length: 400 }, async (_, i) => (await gw.gql(PREDICT, { f: iris.x[0] }, { headers: { 'x-request-id': `m-${i}` } })).body.data.predict.version as number));
    expect(Math.abs(versions.filter((v) => v === 2).length / 400 - 0.75)).toBeLessThan(0.08);
    await gw.gql(SET, { s: [{ version: 1, weight: 1 }] });
    expect(await read()).toEqual({ weights: [{ version: 1, weight: 1 }], source: 'MUTATION' });
    await gw.gql('mutation { clearTrafficSplit(model: "iris") { name } }');
    expect((await read()).source).toBe('MANIFEST');
  }, 60_000);

  it('a split model.json cannot follow is refused like any bad manifest: the model is FAILED with the reason', () => {
    for (const [traffic, message] of [
      [{ split: [{ version: 1, weight: 0 }] }, 'at least one weight must be above 0'],
      [{ split: [{ version: 1, weight: 1 }], guard: { metric: 'ERROR_RATE', stableVersion: 2, threshold: 0.1 } }, 'stableVersion must take part'],
      [{ split: [{ version: 1, weight: 1 }, { version: 1, weight: 2 }] }, 'a version appears twice'],
    ] as const) {
      const repo = mkdtempSync(join(tmpdir(), 'traffic-bad-'));
      writeIrisManifest(repo, 'iris', { traffic });
      writeIrisVersion(repo, 1, 'same');
      const router = createTrafficRouter({ log: pino({ level: 'silent' }) });
      const models = new ModelRepository(repo, pino({ level: 'silent' }), { traffic: router });
      expect(models.get('iris')!.versions[0]).toMatchObject({ status: 'FAILED', error: expect.stringContaining(message) });
      expect(router.split('iris')).toBeUndefined();
    }
  });
});
