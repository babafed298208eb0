import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseCacheKey } from '../src/cache/response-cache.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { REDIS_URL, redisAnswers } from './helpers/redis.ts';
import { writeIrisVersion } from './helpers/iris-versions.ts';

/** A repository with iris twice: `iris` as shipped, `iris_cached` with `responseCache` on. */
function repository(): string {
  const repo = mkdtempSync(join(tmpdir(), 'cache-models-'));
  cpSync('models/iris', join(repo, 'iris'), { recursive: true });
  cpSync('models/iris', join(repo, 'iris_cached'), { recursive: true });
  const manifest = JSON.parse(readFileSync('models/iris/model.json', 'utf8'));
  writeFileSync(join(repo, 'iris_cached', 'model.json'), JSON.stringify({ ...manifest, responseCache: {} }));
  return repo;
}

const PREDICT = `mutation ($m: String!, $f: [Float!]!) { predict(input: { model: $m, features: $f }) { id cached label scores { probability } } }`;
const runs = (gw: TestGateway, model: string) => gw.app.models.resolve(model).stats.runs;

describe('response cache (model.json responseCache)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ modelRepository: repository() });
  });
  afterAll(() => gw.close());

  it('answers a repeated request from the cache without an ONNX run, and still stores it, marked cached', async () => {
    const before = runs(gw, 'iris_cached');
    const first = (await gw.gql(PREDICT, { m: 'iris_cached', f: [5.9, 3.0, 5.1, 1.8] })).body.data.predict;
    const second = (await gw.gql(PREDICT, { m: 'iris_cached', f: [5.9, 3.0, 5.1, 1.8] })).body.data.predict;
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(second.id).not.toBe(first.id);
    expect(second.scores).toEqual(first.scores);
    expect(runs(gw, 'iris_cached') - before).toBe(1);
    const stored = (await gw.gql(`query ($id: ID!) { prediction(id: $id) { cached label } }`, { id: second.id })).body.data.prediction;
    expect(stored).toEqual({ cached: true, label: first.label });
    const other = (await gw.gql(PREDICT, { m: 'iris_cached', f: [5.9, 3.0, 5.1, 1.9] })).body.data.predict;
    expect(other.cached).toBe(false);
    expect(runs(gw, 'iris_cached') - before).toBe(2);
  });

  it('is off for models that do not ask for it', async () => {
    const before = runs(gw, 'iris');
    for (let i = 0; i < 3; i++) expect((await gw.gql(PREDICT, { m: 'iris', f: [5.1, 3.5, 1.4, 0.2] })).body.data.predict.cached).toBe(false);
    expect(runs(gw, 'iris') - before).toBe(3);
  });

  it('keys by model, version, model file and every input element', () => {
    const t = (data: number[]) => [{ name: 'x', datatype: 'FP32' as const, shape: [1, data.length], data }];
    expect(responseCacheKey('m', 1, 'd', t([1, 2]))).toBe(responseCacheKey('m', 1, 'd', t([1.0, 2.0])));
    expect(responseCacheKey('m', 1, 'd', t([1, 2]))).not.toBe(responseCacheKey('m', 2, 'd', t([1, 2])));
    expect(responseCacheKey('m', 1, 'd', t([1, 2]))).not.toBe(responseCacheKey('n', 1, 'd', t([1, 2])));
    expect(responseCacheKey('m', 1, 'd', t([1, 2]))).not.toBe(responseCacheKey('m', 1, 'e', t([1, 2])));
    expect(responseCacheKey('m', 1, 'd', t([1, 2]))).not.toBe(responseCacheKey('m', 1, 'd', t([1, 2.0000001])));
    expect(responseCacheKey('m', 1, 'd', [{ name: 'x', datatype: 'FP32', shape: [2, 1], data: [1, 2] }])).not.toBe(responseCacheKey('m', 1, 'd', t([1, 2])));
  });

  it('never answers from the previous file once a version is reloaded from a replaced model.onnx', async () => {
    const repo = repository();
    const gw2 = await startGateway({ modelRepository: repo });
    try {
      const f = [5.1, 3.5, 1.4, 0.2];
      expect((await gw2.gql(PREDICT, { m: 'iris_cached', f })).body.data.predict).toMatchObject({ cached: false, label: 'setosa' });
      expect((await gw2.gql(PREDICT, { m: 'iris_cached', f })).body.data.predict).toMatchObject({ cached: true, label: 'setosa' });
      writeIrisVersion(repo, 1, 'constant', 'iris_cached'); // always virginica
      const reloaded = await gw2.gql('mutation { loadModel(name: "iris_cached", version: 1) { status } }');
      expect(reloaded.body.data.loadModel.status).toBe('READY');
      expect((await gw2.gql(PREDICT, { m: 'iris_cached', f })).body.data.predict).toMatchObject({ cached: false, label: 'virginica' });
      expect((await gw2.gql(PREDICT, { m: 'iris_cached', f })).body.data.predict).toMatchObject({ cached: true, label: 'virginica' });
    } finally {
      await gw2.close();
    }
  });
});

const redis = await redisAnswers();

describe.skipIf(!redis)('response cache shared through Redis (REDIS_URL)', () => {
  it('an answer computed on replica A is a cache hit on replica B', async () => {
    const repo = repository();
    const env = { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:` };
    const [a, b] = await Promise.all([startGateway({ modelRepository: repo, env }), startGateway({ modelRepository: repo, env })]);
    try {
      const onA = (await a.gql(PREDICT, { m: 'iris_cached', f: [6.1, 2.8, 4.7, 1.2] })).body.data.predict;
      const before = runs(b, 'iris_cached');
      let onB = (await b.gql(PREDICT, { m: 'iris_cached', f: [6.1, 2.8, 4.7, 1.2] })).body.data.predict;
      // A's write to Redis is not awaited by its predict; give it a moment if B came first.
      for (let i = 0; i < 20 && !onB.cached; i++) {
        await new Promise((r) => setTimeout(r, 50));
        onB = (await b.gql(PREDICT, { m: 'iris_cached', f: [6.1, 2.8, 4.7, 1.2] })).body.data.predict;
      }
      expect(onA.cached).toBe(false);
      expect(onB.cached).toBe(true);
      expect(onB.scores).toEqual(onA.scores);
      expect(runs(b, 'iris_cached') - before).toBeLessThanOrEqual(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
