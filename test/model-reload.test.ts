import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelEvent } from '../src/inference/model-events.ts';
import { ModelNotReadyError } from '../src/errors.ts';
import { createMemoryResponseCache } from '../src/cache/response-cache.ts';
import { createHistory } from '../src/serving/history.ts';
import { createPredictionService } from '../src/serving/predict.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { createTestApp, type TestApp } from './helpers/app.ts';
import { writeIrisManifest, writeIrisVersion, type IrisVariant } from './helpers/iris-versions.ts';
import { onPublish } from './helpers/observe.ts';

/**
 * The registry's lifecycle, driven by `poll()` (MODEL_POLL_INTERVAL_MS=0: no timer, every scan
 * is the test's), on a real app with a real history: what a scan does with new, broken,
 * changed and removed version folders, version policies, the verified swap, and the admin
 * mutations. The timed poller under continuous load is in hot-reload.test.ts.
 */

/** Iris rows from the data set (sepal/petal lengths and widths), one per species and more. */
const IRIS_ROWS = readFileSync('datasets/iris.csv', 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').slice(0, 4).map(Number));

const PREDICT = `mutation ($input: PredictInput!) { predict(input: $input) { version label } }`;
const VERSIONS = `query { model(name: "iris") { versions { version status error } } }`;

let repo: string;
let gw: TestApp | undefined;
let events: ModelEvent[];

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  rmSync(repo, { recursive: true, force: true });
});

/** A repository with iris (manifest without defaultVersion) at the given versions, and an app over it. */
async function start(versions: Partial<Record<number, IrisVariant>>, manifest: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  repo = mkdtempSync(join(tmpdir(), 'model-reload-'));
  writeIrisManifest(repo, 'iris', manifest);
  for (const [version, variant] of Object.entries(versions)) writeIrisVersion(repo, Number(version), variant!);
  gw = await createTestApp({ modelRepository: repo, env });
  events = [];
  onPublish(gw.app.bus, (topic, payload) => {
    if (topic === 'model.event') events.push(payload as ModelEvent);
  });
  return gw;
}

/** Writes a version folder in a dot-folder (never scanned) and renames it in, as an operator should: a scan never sees half a file. */
function dropVersion(version: number, variant: IrisVariant | 'garbage') {
  const staging = join(repo, '.staging');
  if (variant === 'garbage') {
    mkdirSync(join(staging, 'iris', String(version)), { recursive: true });
    writeFileSync(join(staging, 'iris', String(version), 'model.onnx'), 'this is not an ONNX model');
  } else writeIrisVersion(staging, version, variant);
  renameSync(join(staging, 'iris', String(version)), join(repo, 'iris', String(version)));
}

async function predictIris(app: TestApp, rows = 12, version?: number) {
  const answers = [];
  for (const row of IRIS_ROWS.filter((_, i) => i % Math.floor(150 / rows) === 0).slice(0, rows)) {
    const res = await app.gql(PREDICT, { input: { model: 'iris', ...(version ? { version } : {}), inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: row }] } });
    expect(res.body.errors).toBeUndefined();
    answers.push(res.body.data.predict as { version: number; label: string });
  }
  return answers;
}

const statuses = async (app: TestApp) => (await app.gql(VERSIONS)).body.data.model.versions as Array<{ version: number; status: string; error: string | null }>;
const typesOf = (version: number) => events.filter((e) => e.version === version).map((e) => e.type);

describe('repository scan (poll)', () => {
  it('loads a new version folder, verifies it by replaying stored requests, then routes unversioned requests to it', async () => {
    const app = await start({ 1: 'same' });
    const before = await predictIris(app, 12);
    expect(new Set(before.map((a) => a.version))).toEqual(new Set([1]));

    dropVersion(2, 'same');
    await app.app.models.poll();

    expect(typesOf(2)).toEqual(['LOADING', 'VERIFIED', 'READY']);
    const verified = events.find((e) => e.type === 'VERIFIED')!;
    // The same file answers the 12 stored requests exactly as they were answered.
    expect(verified.agreement).toEqual({ replayed: 12, labelAgreement: 1, meanAbsoluteDifference: 0 });
    const after = await predictIris(app, 3);
    expect(after.map((a) => a.version)).toEqual([2, 2, 2]);
    expect((await statuses(app)).map((v) => v.status)).toEqual(['READY', 'READY']);
  });

  it('reports a version whose replay agrees less than verify.minAgreement as FAILED with the figures, and keeps serving the old one', async () => {
    const app = await start({ 1: 'same' }, { verify: { minAgreement: 0.9 } });
    const served = await predictIris(app, 15);
    // The constant model answers virginica: its agreement is the share of virginica answers served.
    const expected = served.filter((a) => a.label === 'virginica').length / served.length;

    dropVersion(2, 'constant');
    await app.app.models.poll();

    expect(typesOf(2)).toEqual(['LOADING', 'VERIFIED', 'FAILED']);
    const failed = events.find((e) => e.type === 'FAILED')!;
    expect(failed.agreement?.labelAgreement).toBeCloseTo(expected, 10);
    expect(failed.reason).toMatch(/below verify\.minAgreement 0\.9/);
    expect((await statuses(app)).find((v) => v.version === 2)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/replay agreement/) });
    expect((await predictIris(app, 2)).map((a) => a.version)).toEqual([1, 1]);
  });

  it('without verify bounds, a disagreeing version is VERIFIED with its figures and then serves', async () => {
    const app = await start({ 1: 'same' });
    await predictIris(app, 9);
    dropVersion(2, 'constant');
    await app.app.models.poll();
    expect(typesOf(2)).toEqual(['LOADING', 'VERIFIED', 'READY']);
    expect(events.find((e) => e.type === 'VERIFIED')!.agreement!.labelAgreement).toBeLessThan(1);
  });

  it('reports a broken version FAILED while the old one keeps serving, and loads it once its file is fixed', async () => {
    const app = await start({ 1: 'same' });
    dropVersion(2, 'garbage');
    await app.app.models.poll();
    expect(typesOf(2)).toEqual(['LOADING', 'FAILED']);
    expect((await predictIris(app, 2)).map((a) => a.version)).toEqual([1, 1]);

    // A later scan with nothing changed does not retry (no event storm) ...
    await app.app.models.poll();
    expect(typesOf(2)).toEqual(['LOADING', 'FAILED']);
    // ... and a fixed file is seen: one failure never stops polling.
    rmSync(join(repo, 'iris', '2'), { recursive: true });
    await app.app.models.poll();
    dropVersion(2, 'same');
    await app.app.models.poll();
    expect((await statuses(app)).find((v) => v.version === 2)?.status).toBe('READY');
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([2]);
  });

  it('a version whose every replayed request fails stays out of traffic', async () => {
    const app = await start({ 1: 'same' });
    await predictIris(app, 4);
    dropVersion(2, 'failing');
    await app.app.models.poll();
    expect(typesOf(2)).toEqual(['LOADING', 'FAILED']);
    expect(events.find((e) => e.type === 'FAILED')!.reason).toMatch(/^replay: every replayed request failed on the new version/);
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([1]);
  });

  it('drains and unloads a version whose folder was removed; it disappears from the list', async () => {
    const app = await start({ 1: 'same', 2: 'same' });
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([2]);
    rmSync(join(repo, 'iris', '2'), { recursive: true });
    await app.app.models.poll();
    expect(typesOf(2)).toEqual(['UNLOADED']);
    expect(events.find((e) => e.type === 'UNLOADED')!.reason).toBe('version folder removed');
    expect((await statuses(app)).map((v) => v.version)).toEqual([1]);
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([1]);
  });

  it('reloads a version whose model.onnx changed, the previous file serving until the new one is ready', async () => {
    const app = await start({ 1: 'same' });
    expect((await predictIris(app, 15)).some((a) => a.label !== 'virginica')).toBe(true);
    // Replace version 1's file in place (a new inode, renamed over the old one).
    writeIrisVersion(join(repo, '.staging'), 1, 'constant');
    renameSync(join(repo, '.staging', 'iris', '1', 'model.onnx'), join(repo, 'iris', '1', 'model.onnx'));
    await app.app.models.poll();
    expect(typesOf(1)).toEqual(['LOADING', 'VERIFIED', 'READY']);
    expect(events[0]!.reason).toMatch(/previous file serves until the new one is ready/);
    expect(new Set((await predictIris(app, 6)).map((a) => a.label))).toEqual(new Set(['virginica']));
  });

  it('keeps serving the previous file when a changed model.onnx fails to load', async () => {
    const app = await start({ 1: 'same' });
    mkdirSync(join(repo, '.staging'), { recursive: true });
    writeFileSync(join(repo, '.staging', 'model.onnx'), 'truncated upload');
    renameSync(join(repo, '.staging', 'model.onnx'), join(repo, 'iris', '1', 'model.onnx'));
    await app.app.models.poll();
    expect(typesOf(1)).toEqual(['LOADING', 'FAILED']);
    expect(events[1]!.reason).toMatch(/\(the previously loaded file keeps serving\)$/);
    expect((await statuses(app))[0]).toMatchObject({ status: 'READY', error: null });
    expect((await predictIris(app, 3)).map((a) => a.version)).toEqual([1, 1, 1]);
  });

  it('re-reads a changed model.json; a refused one is reported and the versions serving keep the previous one', async () => {
    const app = await start({ 1: 'same' });
    writeIrisManifest(repo, 'iris', { description: 'second edition' });
    await app.app.models.poll();
    expect((await app.gql(`{ model(name: "iris") { description } }`)).body.data.model.description).toBe('second edition');
    expect(typesOf(1)).toEqual(['LOADING', 'READY']);

    writeFileSync(join(repo, 'iris', 'model.json'), '{ "kind": "CLASSIFIER", "typo": true }');
    await app.app.models.poll();
    const refused = events.filter((e) => e.version === null);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ type: 'FAILED', model: 'iris' });
    expect(refused[0]!.reason).toMatch(/model\.json: .*typo.*versions serving keep the previous model\.json/);
    expect((await app.gql(`{ model(name: "iris") { description } }`)).body.data.model.description).toBe('second edition');
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([1]);
  });

  it('loads a new model folder and unloads a removed one', async () => {
    const app = await start({ 1: 'same' });
    writeIrisManifest(join(repo, '.staging'), 'iris_b');
    writeIrisVersion(join(repo, '.staging'), 1, 'same', 'iris_b');
    renameSync(join(repo, '.staging', 'iris_b'), join(repo, 'iris_b'));
    await app.app.models.poll();
    expect(events.filter((e) => e.model === 'iris_b').map((e) => e.type)).toEqual(['LOADING', 'READY']);
    const res = await app.gql(PREDICT, { input: { model: 'iris_b', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: IRIS_ROWS[0] }] } });
    expect(res.body.data.predict.label).toBe('setosa');

    rmSync(join(repo, 'iris_b'), { recursive: true });
    await app.app.models.poll();
    expect(events.filter((e) => e.model === 'iris_b').map((e) => e.type)).toEqual(['LOADING', 'READY', 'UNLOADED']);
    expect((await app.gql(`{ model(name: "iris_b") { name } }`)).body.data.model).toBeNull();
  });
});

describe('version policy', () => {
  it('latest 1 loads only the highest version and lists the others UNLOADED with the policy', async () => {
    const app = await start({ 1: 'same', 2: 'same' }, { versionPolicy: { latest: { numVersions: 1 } } });
    expect(await statuses(app)).toEqual([
      { version: 1, status: 'UNLOADED', error: 'version policy: latest 1' },
      { version: 2, status: 'READY', error: null },
    ]);
    const res = await app.gql(PREDICT, { input: { model: 'iris', version: 1, inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: IRIS_ROWS[0] }] } });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_READY');

    // A new highest version takes over: 3 loads, then 2 is drained and unloaded.
    dropVersion(3, 'same');
    await app.app.models.poll();
    expect((await statuses(app)).map((v) => v.status)).toEqual(['UNLOADED', 'UNLOADED', 'READY']);
    expect(typesOf(2)).toEqual(['UNLOADED']);
    expect(events.find((e) => e.version === 2)!.reason).toBe('version policy: latest 1');
  });

  it('specific loads the versions listed; all (the default) loads every version', async () => {
    const app = await start({ 1: 'same', 2: 'same', 3: 'same' }, { versionPolicy: { specific: { versions: [1, 3] } } });
    expect((await statuses(app)).map((v) => v.status)).toEqual(['READY', 'UNLOADED', 'READY']);
    await app.close();
    gw = undefined;
    const all = await start({ 1: 'same', 2: 'same', 3: 'same' });
    expect((await statuses(all)).map((v) => v.status)).toEqual(['READY', 'READY', 'READY']);
  });

  it('refuses a malformed policy as a manifest error (every version FAILED with the reason)', async () => {
    const app = await start({ 1: 'same' }, { versionPolicy: { newest: 2 } });
    const [v1] = await statuses(app);
    expect(v1).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^model\.json: versionPolicy/) });
  });
});

describe('loadModel / unloadModel', () => {
  const LOAD = `mutation ($v: Int!) { loadModel(name: "iris", version: $v) { version status error } }`;
  const UNLOAD = `mutation ($v: Int!) { unloadModel(name: "iris", version: $v) { version status error } }`;

  it('unloadModel takes a version out of traffic until loadModel, and polls leave it unloaded', async () => {
    const app = await start({ 1: 'same', 2: 'same' });
    const unloaded = await app.gql(UNLOAD, { v: 2 });
    expect(unloaded.body.data.unloadModel).toEqual({ version: 2, status: 'UNLOADED', error: 'unloadModel' });
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([1]);
    await app.app.models.poll();
    expect((await statuses(app)).map((v) => v.status)).toEqual(['READY', 'UNLOADED']);

    const loaded = await app.gql(LOAD, { v: 2 });
    expect(loaded.body.data.loadModel).toEqual({ version: 2, status: 'READY', error: null });
    expect((await predictIris(app, 1)).map((a) => a.version)).toEqual([2]);
    // Version 1 serves and a prediction is stored: the reload is verified first.
    expect(typesOf(2)).toEqual(['UNLOADED', 'LOADING', 'VERIFIED', 'READY']);
  });

  it('loadModel loads a version the policy leaves out, and answers MODEL_NOT_FOUND for a folder that does not exist', async () => {
    const app = await start({ 1: 'same', 2: 'same' }, { versionPolicy: { latest: { numVersions: 1 } } });
    expect((await app.gql(LOAD, { v: 1 })).body.data.loadModel.status).toBe('READY');
    await app.app.models.poll();
    expect((await statuses(app)).map((v) => v.status)).toEqual(['READY', 'READY']);
    const missing = await app.gql(LOAD, { v: 7 });
    expect(missing.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    const unknown = await app.gql(UNLOAD, { v: 7 });
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
  });
});

describe('a request whose version is drained before it runs', () => {
  it('runs on the version serving now when it named none, and fails with MODEL_NOT_READY when it named one', async () => {
    const app = await start({ 1: 'same', 2: 'same' }, { responseCache: {} });
    // The window: predict resolves the version, then awaits the response cache before it runs.
    // This cache unloads version 2 during that await, as a poll removing its folder would.
    const memory = createMemoryResponseCache();
    const cache = {
      get: async (key: string) => {
        await app.app.models.unloadVersion('iris', 2);
        return memory.get(key);
      },
      set: memory.set,
    };
    const store = createPredictionRepository(app.app.db, { writer: app.app.historyWriter });
    const service = createPredictionService({ models: app.app.models, history: createHistory({ store, bus: app.app.bus }), cache });
    const features = [6.3, 2.9, 5.6, 1.8];

    const record = await service.predict({ model: 'iris', features });
    expect(record.version).toBe(1);
    expect((await store.findByIds([record.id]))[0]?.version).toBe(1);

    await app.app.models.loadVersion('iris', 2);
    await expect(service.predict({ model: 'iris', version: 2, features })).rejects.toBeInstanceOf(ModelNotReadyError);
  });
});
