import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const STATS = `{ model(name: "iris") { versions { batching { enabled reason maxBatchSize maxQueueDelayMs } stats { runs requests rows batches meanBatchSize meanQueueDelayMs maxQueueDelayMs } } } }`;

describe('dynamic batching over HTTP', () => {
  let on: TestGateway;
  let off: TestGateway;
  beforeAll(async () => {
    // iris with a 50 ms queue window, so the burst batches however slowly this machine runs.
    const repo = mkdtempSync(join(tmpdir(), 'batching-repo-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    const manifest = JSON.parse(readFileSync('models/iris/model.json', 'utf8'));
    writeFileSync(join(repo, 'iris', 'model.json'), JSON.stringify({ ...manifest, batching: { maxBatchSize: 16, maxQueueDelayMs: 50 } }));
    on = await startGateway({ modelRepository: repo });
    off = await startGateway({ env: { BATCHING: 'false' } });
  });
  afterAll(async () => {
    await on.close();
    await off.close();
  });

  const burst = (gw: TestGateway, n: number) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        gw.gql(`mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id label } }`, {
          f: i % 2 ? [5.1, 3.5, 1.4, 0.2] : [6.7, 3.0, 5.2, 2.3],
        }),
      ),
    );

  it('stacks concurrent predictions into shared runs, each caller getting its own answer, and shows it in ModelVersion.stats', async () => {
    const results = await burst(on, 64);
    results.forEach((r, i) => expect(r.body.data.predict.label).toBe(i % 2 ? 'setosa' : 'virginica'));
    expect(new Set(results.map((r) => r.body.data.predict.id)).size).toBe(64);
    const [version] = (await on.gql(STATS)).body.data.model.versions;
    expect(version.batching).toEqual({ enabled: true, reason: 'model.json batching.maxBatchSize is 16', maxBatchSize: 16, maxQueueDelayMs: 50 });
    expect(version.stats.requests).toBe(64);
    expect(version.stats.batches).toBeLessThan(64);
    expect(version.stats.batches).toBeGreaterThanOrEqual(4); // at most 16 rows a run
    expect(version.stats.maxQueueDelayMs).toBeGreaterThan(40);
    expect(version.stats.meanBatchSize).toBeCloseTo(64 / version.stats.batches, 6);
    expect(version.stats.meanBatchSize).toBeGreaterThan(1);
    expect(await on.countRows()).toBe(64);
  });

  it('runs one request per ONNX run with BATCHING=false', async () => {
    await burst(off, 32);
    const [version] = (await off.gql(STATS)).body.data.model.versions;
    expect(version.batching).toEqual({ enabled: false, reason: 'BATCHING=false', maxBatchSize: 0, maxQueueDelayMs: 0 });
    expect(version.stats).toMatchObject({ requests: 32, batches: 32, meanBatchSize: 1, runs: 32 });
    expect(await off.countRows()).toBe(32);
  });
});
