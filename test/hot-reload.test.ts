import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeIrisManifest, writeIrisVersion } from './helpers/iris-versions.ts';
import { createTestKey } from './helpers/api-keys.ts';

/**
 * Hot reload on a real server polling its repository every 100 ms, watched through a real
 * graphql-ws `modelEvents` subscription, while clients keep predicting over HTTP: every
 * request must be answered, before, during and after each change.
 */

const PREDICT = 'mutation { predict(input: { model: "iris", features: [6.3, 2.9, 5.6, 1.8] }) { version label } }';
const EVENTS = 'subscription { modelEvents(model: "iris") { type version reason agreement { replayed labelAgreement meanAbsoluteDifference } } }';

interface Answer {
  status: number;
  version?: number;
  error?: string;
}

/** `clients` loops posting predict until stopped; every answer is kept. */
function continuousLoad(url: string, clients: number) {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: PREDICT }) });
      const body = (await res.json()) as { data?: { predict: { version: number } }; errors?: Array<{ message: string }> };
      answers.push({ status: res.status, version: body.data?.predict?.version, error: body.errors?.[0]?.message });
    }
  });
  return {
    answers,
    /** Resolves once `count` more answers with `version` have arrived. */
    async until(version: number, count: number) {
      const start = answers.filter((a) => a.version === version).length;
      while (answers.filter((a) => a.version === version).length < start + count) await new Promise((r) => setTimeout(r, 20));
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('hot reload under continuous load (MODEL_POLL_INTERVAL_MS=100)', () => {
  let repo: string;
  let gw: TestGateway;

  beforeAll(async () => {
    repo = mkdtempSync(join(tmpdir(), 'hot-reload-'));
    writeIrisManifest(repo);
    writeIrisVersion(repo, 1, 'same');
    gw = await startGateway({ modelRepository: repo, env: { MODEL_POLL_INTERVAL_MS: '100', MODEL_REPLAY_REQUESTS: '50' } });
  });
  afterAll(async () => {
    await gw?.close();
    rmSync(repo, { recursive: true, force: true });
  });

  /** Builds a version folder in a dot-folder the scan skips, then renames it in. */
  function drop(version: number, contents: 'same' | 'garbage') {
    const staging = join(repo, '.staging', 'iris', String(version));
    if (contents === 'garbage') {
      mkdirSync(staging, { recursive: true });
      writeFileSync(join(staging, 'model.onnx'), 'not a model');
    } else writeIrisVersion(join(repo, '.staging'), version, 'same');
    renameSync(staging, join(repo, 'iris', String(version)));
  }

  it('serves a new version after warm-up and replay, survives a broken one and drains a removed one, with no failed request', async () => {
    const client = wsClient(gw.url);
    const events = subscribeWs<{ modelEvents: { type: string; version: number | null; reason: string | null; agreement: { replayed: number; labelAgreement: number; meanAbsoluteDifference: number } | null } }>(client, EVENTS);
    const load = continuousLoad(gw.url, 8);
    try {
      const seen = () => events.events.map((e) => e.data!.modelEvents);
      await load.until(1, 100);

      // A new version: loaded, warmed up, verified on the stored requests, then it takes the traffic.
      drop(2, 'same');
      await events.waitFor(3, 20_000);
      expect(seen().map((e) => [e.type, e.version])).toEqual([['LOADING', 2], ['VERIFIED', 2], ['READY', 2]]);
      expect(seen()[1]!.agreement).toEqual({ replayed: 50, labelAgreement: 1, meanAbsoluteDifference: 0 });
      await load.until(2, 100);

      // A broken version: FAILED with the reason, version 2 keeps answering.
      drop(3, 'garbage');
      await events.waitFor(5, 20_000);
      expect(seen().slice(3).map((e) => [e.type, e.version])).toEqual([['LOADING', 3], ['FAILED', 3]]);
      expect(seen()[4]!.reason).toMatch(/protobuf|parse|load/i);
      await load.until(2, 100);

      // Removing the serving version's folder: drained (requests in flight finish), unloaded; version 1 takes over.
      rmSync(join(repo, 'iris', '2'), { recursive: true });
      await events.waitFor(6, 20_000);
      expect(seen()[5]).toMatchObject({ type: 'UNLOADED', version: 2, reason: 'version folder removed' });
      await load.until(1, 100);
    } finally {
      await load.stop();
      events.unsubscribe();
      await client.dispose();
    }
    const failed = load.answers.filter((a) => a.status !== 200 || a.error !== undefined || a.version === undefined);
    expect(failed).toEqual([]);
    expect(load.answers.length).toBeGreaterThan(400);
    // Every answer was committed: the history holds exactly the acknowledged predictions.
    expect(await gw.countRows()).toBe(load.answers.length);
  });
});

describe('loadModel and unloadModel need the admin scope', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { AUTH_MODE: 'required' } });
  });
  afterAll(() => gw?.close());

  async function bearer(scopes: Array<'predict' | 'read' | 'admin'>) {
    return (await createTestKey(gw.app.db, scopes.join('+'), scopes)).headers;
  }

  it('refuses a predict+read key with FORBIDDEN and lets an admin key unload and load', async () => {
    const unload = 'mutation { unloadModel(name: "iris", version: 1) { status } }';
    const load = 'mutation { loadModel(name: "iris", version: 1) { status } }';
    const user = await bearer(['predict', 'read']);
    const refused = await gw.gql(unload, undefined, { headers: user });
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gw.gql(PREDICT, undefined, { headers: user })).body.data.predict.version).toBe(1);

    const admin = await bearer(['admin']);
    expect((await gw.gql(unload, undefined, { headers: admin })).body.data.unloadModel.status).toBe('UNLOADED');
    expect((await gw.gql(PREDICT, undefined, { headers: user })).body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_READY');
    expect((await gw.gql(load, undefined, { headers: admin })).body.data.loadModel.status).toBe('READY');
    expect((await gw.gql(PREDICT, undefined, { headers: user })).body.data.predict.version).toBe(1);
  });
});
