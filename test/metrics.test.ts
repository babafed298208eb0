import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeSse } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';
import { writeIrisManifest, writeIrisVersion } from './helpers/iris-versions.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TOKEN = 'metrics-token-0123456789';
const PREDICT = `mutation Classify($input: PredictInput!) { predict(input: $input) { id label } }`;
const GENERATE = `subscription Tell { generate(input: { model: "fortune", prompt: "The ", maxTokens: 3, temperature: 0 }) { token done } }`;

/** One sample of Prometheus text: `name{a="x",b="y"} value`; labels not named are not compared. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

const scrape = (url: string, token?: string) => fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

describe('/metrics after known traffic (METRICS_TOKEN set)', () => {
  let gw: TestGateway;
  let text: string;
  const N = 5;
  beforeAll(async () => {
    gw = await startGateway({ env: { METRICS_TOKEN: TOKEN } });
    // Distinct features: no answer comes from a response cache, each predict runs the model.
    for (let i = 0; i < N; i++) {
      const res = await gw.gql(PREDICT, { input: { model: 'iris', features: [5 + i / 10, 3.5, 1.4, 0.2] } });
      expect(res.body.errors).toBeUndefined();
    }
    const failed = await gw.gql(PREDICT, { input: { model: 'nope', features: [1] } });
    expect(failed.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    const generation = subscribeSse(`${gw.url}/graphql`, GENERATE);
    await generation.done;
    expect(generation.events.at(-1)?.data?.generate.done).toBe(true);
    gw.app.metrics.rateLimited('predict');
    gw.app.metrics.rateLimited('predict');
    gw.app.metrics.rateLimited('read');
    // The subscription's end is counted right after its last event went out.
    await waitFor(async () => sample(await (await scrape(gw.url, TOKEN)).text(), 'gateway_active_subscriptions') === 0);
    const res = await scrape(gw.url, TOKEN);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    text = await res.text();
  });
  afterAll(() => gw.close());

  it('counts operations by name, type, outcome and code: N predicts ok, one MODEL_NOT_FOUND, one subscription', () => {
    expect(sample(text, 'gateway_graphql_operations_total', { operation_name: 'Classify', operation_type: 'mutation', outcome: 'ok', code: '' })).toBe(N);
    expect(sample(text, 'gateway_graphql_operations_total', { operation_name: 'Classify', operation_type: 'mutation', outcome: 'error', code: 'MODEL_NOT_FOUND' })).toBe(1);
    expect(sample(text, 'gateway_graphql_operations_total', { operation_name: 'Tell', operation_type: 'subscription', outcome: 'ok', code: '' })).toBe(1);
  });

  it('observes query and mutation durations in a histogram (no summary anywhere)', () => {
    expect(sample(text, 'gateway_graphql_operation_duration_seconds_count', { operation_name: 'Classify', outcome: 'ok' })).toBe(N);
    expect(sample(text, 'gateway_graphql_operation_duration_seconds_bucket', { operation_name: 'Classify', outcome: 'ok', le: '+Inf' })).toBe(N);
    expect(sample(text, 'gateway_graphql_operation_duration_seconds_count', { operation_name: 'Tell' })).toBeUndefined();
    expect(text).not.toMatch(/^# TYPE \S+ summary$/m);
  });

  it('times each ONNX run per model and version, and counts the requests each run served', () => {
    expect(sample(text, 'gateway_inference_duration_seconds_count', { model: 'iris', version: '1' })).toBe(N);
    expect(sample(text, 'gateway_inference_batch_size_sum', { model: 'iris', version: '1' })).toBe(N);
    // The generation's steps (prompt, then one per token after the first) are runs of its model.
    expect(sample(text, 'gateway_inference_duration_seconds_count', { model: 'fortune', version: '1' })).toBeGreaterThanOrEqual(3);
  });

  it('counts the prediction rows committed (as many as the history holds) and times the commits', async () => {
    const rows = await gw.countRows();
    expect(rows).toBe(N + 1);
    expect(sample(text, 'gateway_predictions_written_total')).toBe(rows);
    expect(sample(text, 'gateway_database_write_duration_seconds_count')).toBeGreaterThanOrEqual(1);
  });

  it('reads gauges at scrape time: no subscription, generation or queued work left', () => {
    expect(sample(text, 'gateway_active_subscriptions')).toBe(0);
    expect(sample(text, 'gateway_active_generations')).toBe(0);
    expect(sample(text, 'gateway_queue_depth', { queue: 'inference', model: 'iris', version: '1', lane: 'online' })).toBe(0);
    expect(sample(text, 'gateway_queue_depth', { queue: 'history' })).toBe(0);
  });

  it('counts rate-limit refusals by operation class through metrics.rateLimited', () => {
    expect(sample(text, 'gateway_rate_limited_total', { operation_class: 'predict' })).toBe(2);
    expect(sample(text, 'gateway_rate_limited_total', { operation_class: 'read' })).toBe(1);
  });

  it('includes the process metrics', () => {
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('counts an active subscription while it streams', async () => {
    const sub = subscribeSse(`${gw.url}/graphql`, `subscription Watch { predictionCreated { id } }`);
    await waitFor(async () => sample(await (await scrape(gw.url, TOKEN)).text(), 'gateway_active_subscriptions') === 1);
    sub.unsubscribe();
    await waitFor(async () => sample(await (await scrape(gw.url, TOKEN)).text(), 'gateway_active_subscriptions') === 0);
  });

  it('refuses a scrape without the token or with a wrong one (401, WWW-Authenticate: Bearer)', async () => {
    for (const res of [await scrape(gw.url), await scrape(gw.url, `${TOKEN}x`), await fetch(`${gw.url}/metrics`, { headers: { authorization: TOKEN } })]) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await res.text()).not.toContain('gateway_');
    }
  });
});

describe('model events and shadow runs, counted', () => {
  it('counts each model event by type, and each mirrored prediction by shadow version and outcome', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'metrics-lifecycle-'));
    writeIrisManifest(repo, 'iris', { defaultVersion: 1 });
    writeIrisVersion(repo, 1, 'same');
    writeIrisVersion(repo, 2, 'failing');
    writeIrisVersion(repo, 3, 'constant');
    const gw = await startGateway({ modelRepository: repo });
    try {
      const shadowOn = async (version: number, predictions: number) => {
        expect((await gw.gql('mutation($v: Int!) { setShadow(model: "iris", version: $v) { version } }', { v: version })).body.errors).toBeUndefined();
        for (let i = 0; i < predictions; i++) expect((await gw.gql(PREDICT, { input: { model: 'iris', features: [5 + i / 10, 3.5, 1.4, 0.2] } })).body.errors).toBeUndefined();
        await gw.app.shadow.idle();
        await gw.gql('mutation { clearShadow(model: "iris") { version } }');
      };
      await shadowOn(2, 4); // every shadow run fails
      await shadowOn(3, 3);
      const text = await (await scrape(gw.url)).text();
      expect(sample(text, 'gateway_shadow_runs_total', { model: 'iris', version: '2', outcome: 'failed' })).toBe(4);
      expect(sample(text, 'gateway_shadow_runs_total', { model: 'iris', version: '2', outcome: 'ok' })).toBeUndefined();
      expect(sample(text, 'gateway_shadow_runs_total', { model: 'iris', version: '3', outcome: 'ok' })).toBe(3);
      expect(sample(text, 'gateway_model_events_total', { model: 'iris', type: 'LOADING' })).toBe(3);
      expect(sample(text, 'gateway_model_events_total', { model: 'iris', type: 'READY' })).toBe(3);
      expect(sample(text, 'gateway_model_events_total', { model: 'iris', type: 'TRAFFIC' })).toBe(4); // two setShadow, two clearShadow
    } finally {
      await gw.close();
    }
  });
});

describe('METRICS=false', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { METRICS: 'false' } });
  });
  afterAll(() => gw.close());

  it('has no /metrics (404) and keeps no registry; the rate-limit hook is a no-op', async () => {
    await gw.gql(PREDICT, { input: { model: 'iris', features: [5.1, 3.5, 1.4, 0.2] } });
    const res = await scrape(gw.url);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain('gateway_');
    expect(gw.app.metrics.registry).toBeUndefined();
    expect(() => gw.app.metrics.rateLimited('predict')).not.toThrow();
  });
});

describe('WORKERS=2: /metrics adds up every worker', () => {
  let gw: GatewayProcess;
  beforeAll(async () => {
    gw = await startGatewayProcess({ WORKERS: '2' });
    await waitFor(async () => gw.lines.filter((l) => l.msg === 'models loaded').length >= 2, 60_000);
  });
  afterAll(async () => {
    gw.child.kill('SIGTERM');
    await gw.exited;
  });

  it('N predicts on fresh connections (spread over both workers) are counted N times, whichever worker answers the scrape', async () => {
    const N = 8;
    for (let i = 0; i < N; i++) {
      const res = await fetch(`${gw.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({ query: PREDICT, variables: { input: { model: 'iris', features: [4 + i / 10, 3, 1.4, 0.2] } } }),
      });
      expect((await res.json()).errors).toBeUndefined();
    }
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${gw.url}/metrics`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(sample(text, 'gateway_graphql_operations_total', { operation_name: 'Classify', outcome: 'ok' })).toBe(N);
      expect(sample(text, 'gateway_predictions_written_total')).toBe(N);
    }
  });
});
