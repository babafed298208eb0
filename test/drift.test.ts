import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIris } from '../scripts/models/datasets.ts';
import { mulberry32, shuffled } from '../scripts/models/prng.ts';
import type { Manifest } from '../src/inference/manifest.ts';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeIrisManifest, writeIrisVersion } from './helpers/iris-versions.ts';
import { onPublish, watchSubscribers } from './helpers/observe.ts';
import { createTestKey } from './helpers/api-keys.ts';

// A repository with the shipped iris model (training references in its model.json) and
// `plain`, the same model without references.
let repository: string;
const manifest = JSON.parse(readFileSync('models/iris/model.json', 'utf8')) as Manifest;
const features = manifest.features!;

beforeAll(() => {
  repository = mkdtempSync(join(tmpdir(), 'drift-'));
  writeIrisVersion(repository, 1, 'same');
  writeIrisManifest(repository);
  writeIrisVersion(repository, 1, 'same', 'plain');
  writeIrisManifest(repository, 'plain', { features: features.map(({ name, min, max }) => ({ name, min, max })) });
});
afterAll(() => rmSync(repository, { recursive: true, force: true }));

/** The 150 rows of datasets/iris.csv in a seeded random order (the file is sorted by species). */
const irisRows = () => shuffled(loadIris().x, mulberry32(7));

/** The same rows with `petal_length_cm` moved up by 3 standard deviations (still inside model.json's range). */
function shiftedRows(): number[][] {
  const rows = irisRows();
  const column = rows.map((r) => r[2]!);
  const mean = column.reduce((a, b) => a + b, 0) / column.length;
  const std = Math.sqrt(column.reduce((a, b) => a + (b - mean) ** 2, 0) / column.length);
  return rows.map(([a, b, c, d]) => [a!, b!, c! + 3 * std, d!]);
}

/** One predict request per row, 25 at a time; each answers after its row is committed. */
async function send(gw: TestGateway, model: string, rows: number[][]): Promise<void> {
  for (let i = 0; i < rows.length; i += 25) {
    const answers = await Promise.all(
      rows.slice(i, i + 25).map((f) => gw.gql('mutation ($m: String!, $f: [Float!]!) { predict(input: { model: $m, features: $f }) { id } }', { m: model, f })),
    );
    for (const a of answers) expect(a.body.errors).toBeUndefined();
  }
}

/** PSI and out-of-range share written out plainly (the library's psi.ts is tested on its own). */
function expectedFigures(rows: number[][]) {
  return features.map((f, j) => {
    const { edges, proportions } = f.reference!;
    const counts = proportions.map(() => 0);
    let outside = 0;
    for (const row of rows) {
      const v = row[j]!;
      let bin = 0;
      for (let i = 1; i < edges.length - 1; i++) if (v >= edges[i]!) bin = i;
      counts[bin]!++;
      if (v < edges[0]! || v > edges.at(-1)!) outside++;
    }
    const total = proportions.reduce((a, b) => a + b, 0);
    let psi = 0;
    counts.forEach((c, i) => {
      const actual = Math.max(c / rows.length, 1e-4);
      const expected = Math.max(proportions[i]! / total, 1e-4);
      psi += (actual - expected) * Math.log(actual / expected);
    });
    return { name: f.name, psi, outOfRangeShare: outside / rows.length };
  });
}

const DRIFT_QUERY = `query ($m: String!, $w: Int) { model(name: $m) { versions { version drift(window: $w) { window sampled features { name psi outOfRangeShare } } } } }`;
const ALERTS = 'subscription { driftAlerts(model: "iris") { model version feature psi threshold sampled createdAt } }';

describe('ModelVersion.drift', () => {
  let gw: TestGateway;
  const statements: string[] = [];
  beforeAll(async () => {
    gw = await startGateway({ modelRepository: repository, env: { DRIFT_CHECK_INTERVAL_MS: '0' }, onQuery: (sql) => statements.push(sql) });
  });
  afterAll(() => gw.close());

  it('reports each feature of the newest `window` stored inputs against the training reference, read in one query', async () => {
    const unshifted = irisRows();
    const shifted = shiftedRows();
    await send(gw, 'iris', unshifted.slice(0, 100));
    await send(gw, 'iris', shifted.slice(0, 40));

    statements.length = 0;
    const all = await gw.gql(DRIFT_QUERY, { m: 'iris', w: 500 });
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^SELECT .*inputs.* FROM .*Prediction.* LIMIT/);
    const [version] = all.body.data.model.versions;
    expect(version.drift).toMatchObject({ window: 500, sampled: 140 });
    expectedFigures([...unshifted.slice(0, 100), ...shifted.slice(0, 40)]).forEach((f, j) => {
      expect(version.drift.features[j].name).toBe(f.name);
      expect(version.drift.features[j].psi).toBeCloseTo(f.psi, 9);
      expect(version.drift.features[j].outOfRangeShare).toBeCloseTo(f.outOfRangeShare, 12);
    });

    // The newest 40 are the shifted rows: petal length drifts far, the other features do not move the same way.
    const newest = (await gw.gql(DRIFT_QUERY, { m: 'iris', w: 40 })).body.data.model.versions[0].drift;
    expect(newest.sampled).toBe(40);
    const byName = Object.fromEntries(newest.features.map((f: { name: string }) => [f.name, f]));
    expect(byName.petal_length_cm.psi).toBeCloseTo(expectedFigures(shifted.slice(0, 40))[2]!.psi, 9);
    expect(byName.petal_length_cm.psi).toBeGreaterThan(1);
    expect(byName.petal_length_cm.outOfRangeShare).toBeGreaterThan(0.5);
  });

  it('is null for a model without references, and figures are null before anything was stored', async () => {
    const plain = await gw.gql(DRIFT_QUERY, { m: 'plain' });
    expect(plain.body.data.model.versions[0].drift).toBeNull();
    const fresh = await startGateway({ modelRepository: repository, env: { DRIFT_CHECK_INTERVAL_MS: '0' } });
    try {
      const empty = (await fresh.gql(DRIFT_QUERY, { m: 'iris' })).body.data.model.versions[0].drift;
      expect(empty).toEqual({ window: 500, sampled: 0, features: features.map((f) => ({ name: f.name, psi: null, outOfRangeShare: null })) });
    } finally {
      await fresh.close();
    }
  });

  it('refuses a window outside 1..10000', async () => {
    const res = await gw.gql(DRIFT_QUERY, { m: 'iris', w: 0 });
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', issues: [{ message: 'expected an integer from 1 to 10000' }] });
  });
});

describe('driftAlerts', () => {
  const env = { DRIFT_CHECK_INTERVAL_MS: '50', DRIFT_MIN_SAMPLES: '150' };

  it('stays silent over SSE for rows drawn from the iris data set, after two checks of all of them', async () => {
    const gw = await startGateway({ modelRepository: repository, env });
    const published: unknown[] = [];
    const undo = onPublish(gw.app.bus, (topic, payload) => topic === 'drift.alert' && published.push(payload));
    const subscribers = watchSubscribers(gw.app.bus);
    const sub = subscribeSse(gw.url, ALERTS);
    try {
      await subscribers.listening(1);
      await send(gw, 'iris', irisRows());
      await gw.app.driftWatch.afterChecks(2);
      // The checks judged them (enough samples) and found every feature below the threshold.
      const drift = (await gw.gql(DRIFT_QUERY, { m: 'iris' })).body.data.model.versions[0].drift;
      expect(drift.sampled).toBe(150);
      for (const f of drift.features) expect(f.psi).toBeLessThan(0.2);
      expect(published).toEqual([]);
      expect(sub.events).toEqual([]);
    } finally {
      sub.unsubscribe();
      undo();
      subscribers.restore();
      await gw.close();
    }
  });

  it('fires once over graphql-ws for a stream with petal length shifted by 3 standard deviations, naming that feature', async () => {
    const gw = await startGateway({ modelRepository: repository, env });
    const subscribers = watchSubscribers(gw.app.bus);
    const client = wsClient(gw.url);
    const sub = subscribeWs(client, ALERTS);
    try {
      await subscribers.listening(1);
      await send(gw, 'iris', shiftedRows());
      await sub.waitFor(1);
      // Two more checks see the feature still above the threshold: no second alert.
      await gw.app.driftWatch.afterChecks(2);
      const drift = (await gw.gql(DRIFT_QUERY, { m: 'iris' })).body.data.model.versions[0].drift;
      const petal = drift.features.find((f: { name: string }) => f.name === 'petal_length_cm');
      expect(sub.events.map((e) => e.data?.driftAlerts)).toEqual([
        { model: 'iris', version: 1, feature: 'petal_length_cm', psi: petal.psi, threshold: 0.2, sampled: 150, createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      ]);
      for (const f of drift.features) if (f.name !== 'petal_length_cm') expect(f.psi).toBeLessThan(0.2);
    } finally {
      sub.unsubscribe();
      await client.dispose();
      subscribers.restore();
      await gw.close();
    }
  });
});

describe('drift with AUTH_MODE=required', () => {
  it('needs the read scope: a predict-only key gets FORBIDDEN for ModelVersion.drift and driftAlerts', async () => {
    const gw = await startGateway({ modelRepository: repository, env: { AUTH_MODE: 'required', DRIFT_CHECK_INTERVAL_MS: '0' } });
    const { headers } = await createTestKey(gw.app.db, 'p', ['predict']);
    try {
      const drift = await gw.gql(DRIFT_QUERY, { m: 'iris' }, { headers });
      expect(drift.body.errors?.map((e) => e.extensions)).toEqual([{ code: 'FORBIDDEN', scopes: ['read'] }]);
      expect(drift.body.data.model.versions[0].drift).toBeNull();
      // Refused when it starts: SSE answers 403 instead of opening the stream.
      await expect(subscribeSse(gw.url, ALERTS, undefined, headers).done).rejects.toThrow('Server responded with 403');
    } finally {
      await gw.close();
    }
  });
});
