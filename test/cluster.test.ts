import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { findNginx, startNginx, type RunningNginx } from './helpers/nginx.ts';
import { startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';
import { REDIS_URL, redisAnswers } from './helpers/redis.ts';

const nginx = findNginx();

const redis = await redisAnswers();
const skipped = !nginx ? 'no nginx on PATH (apt-get install -y nginx)' : !redis ? `no Redis at ${REDIS_URL}` : '';
if (skipped) console.warn(`cluster.test.ts: SKIPPED: ${skipped}`);

async function gql(url: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return (await res.json());
}
const PREDICT = `mutation ($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id } }`;
const JOB = `query ($id: ID!) { batchJob(id: $id) { status processed failed total } }`;

describe.skipIf(Boolean(skipped))('a cluster: nginx in front of two replicas on one database and one Redis', () => {
  let a: GatewayProcess;
  let b: GatewayProcess | undefined;
  let proxy: RunningNginx | undefined;
  let env: Record<string, string>;

  beforeAll(async () => {
    const repo = mkdtempSync(join(tmpdir(), 'cluster-models-'));
    for (const model of ['iris', 'fortune']) cpSync(`models/${model}`, join(repo, model), { recursive: true });
    env = { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:`, MODEL_REPOSITORY: repo, BATCH_CHUNK_ROWS: '20', BATCH_LEASE_MS: '1500' };
    a = await startGatewayProcess(env);
    await waitFor(async () => (await fetch(`${a.url}/readyz`)).ok, 60_000);
  });
  afterAll(async () => {
    await proxy?.stop();
    for (const p of [a, b]) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await Promise.all([a?.exited, b?.exited]);
  });

  it('a batch job submitted through A and running on A is finished by B after A is killed with SIGKILL, every row exactly once; subscriptions and generations stream through nginx', { timeout: 180_000 }, async () => {
    // The job starts on A, the only replica so far.
    const rows = Array.from({ length: 30_000 }, (_, i) => [4 + (i % 40) / 10, 3, 1.4 + (i % 50) / 10, 0.2]);
    const id: string = (await gql(a.url, `mutation ($rows: [[Float!]!]) { submitBatchJob(input: { model: "iris", rows: $rows }) { id } }`, { rows })).data.submitBatchJob.id;
    await waitFor(async () => (await gql(a.url, JOB, { id })).data.batchJob.processed > 0, 30_000);

    b = await startGatewayProcess({ ...env, DATABASE_URL: a.databaseUrl });
    await waitFor(async () => (await fetch(`${b!.url}/readyz`)).ok, 60_000);
    proxy = await startNginx(nginx!, [new URL(a.url).host, new URL(b.url).host]);

    // A subscription opened through nginx hears predictions made directly on each replica.
    const client = wsClient(proxy.url);
    const created = subscribeWs(client, `subscription { predictionCreated(model: "iris") { id } }`);
    await new Promise((r) => setTimeout(r, 500));
    const onA = (await gql(a.url, PREDICT, { f: [5.1, 3.5, 1.4, 0.2] })).data.predict.id;
    const onB = (await gql(b.url, PREDICT, { f: [6.7, 3.0, 5.2, 2.3] })).data.predict.id;
    await created.waitFor(2);
    expect(created.events.map((e) => e.data!.predictionCreated.id)).toEqual([onA, onB]);
    created.unsubscribe();

    // A generation streams token by token over WebSocket through nginx.
    const generation = subscribeWs(client, `subscription { generate(input: { model: "fortune", prompt: "The ", maxTokens: 12, seed: 3 }) { token done } }`);
    await generation.done;
    expect(generation.events).toHaveLength(13);
    expect(generation.events.at(-1)!.data!.generate.done).toBe(true);
    await client.dispose();

    // Kill A mid-job; B takes the job over once A's lease runs out.
    const before = (await gql(b.url, JOB, { id })).data.batchJob;
    expect(before.status).toBe('RUNNING');
    expect(before.processed).toBeLessThan(rows.length);
    expect(b.lines.some((l) => l.msg === 'batch job running' && l.job === id)).toBe(false); // A holds it
    a.child.kill('SIGKILL');
    await a.exited;
    let job: any;
    await waitFor(async () => {
      job = (await gql(proxy!.url, JOB, { id })).data.batchJob;
      return job.status !== 'RUNNING';
    }, 150_000);
    expect(job).toEqual({ status: 'SUCCEEDED', processed: rows.length, failed: 0, total: rows.length });
    expect(b.lines.some((l) => l.msg === 'batch job running' && l.job === id)).toBe(true);
    const results = await fetch(`${proxy.url}/batch-jobs/${id}/results.jsonl`);
    const indices = (await results.text()).trimEnd().split('\n').map((line) => (JSON.parse(line) as { index: number }).index);
    expect(indices).toEqual(rows.map((_, i) => i)); // every row once, in order
  });
});
