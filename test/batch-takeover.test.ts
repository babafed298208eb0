import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startGatewayProcess, waitFor, type GatewayProcess } from './helpers/process.ts';
import { REDIS_URL, redisAnswers } from './helpers/redis.ts';

const ROWS = 30_000;

const available = await redisAnswers();
if (!available) console.warn(`batch-takeover.test.ts: SKIPPED, no Redis at ${REDIS_URL}`);

async function gql(url: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return (await res.json());
}
const JOB = `query ($id: ID!) { batchJob(id: $id) { status processed failed total } }`;
const runs = (p: GatewayProcess, id: string) => p.lines.filter((l) => l.msg === 'batch job running' && l.job === id);

describe.skipIf(!available)('batch jobs across replicas (REDIS_URL: BullMQ)', () => {
  it('a job whose replica is killed with SIGKILL mid-job is taken over by the other replica and finishes with every row exactly once', { timeout: 120_000 }, async () => {
    const env = { REDIS_URL, REDIS_PREFIX: `test-${randomUUID()}:`, BATCH_CHUNK_ROWS: '200', BATCH_LEASE_MS: '1500' };
    const a = await startGatewayProcess(env);
    const b = await startGatewayProcess({ ...env, DATABASE_URL: a.databaseUrl }); // one database, two replicas
    try {
      await waitFor(async () => (await fetch(`${a.url}/readyz`)).status === 200 && (await fetch(`${b.url}/readyz`)).status === 200);
      const rows = Array.from({ length: ROWS }, (_, i) => (i % 9 === 4 ? [1, 2, 3] : [4 + (i % 40) / 10, 3, 1.4 + (i % 50) / 10, 0.2]));
      const id: string = (await gql(a.url, `mutation ($rows: [[Float!]!]) { submitBatchJob(input: { model: "iris", rows: $rows }) { id } }`, { rows })).data.submitBatchJob.id;

      // Whichever replica the queue gave it to is the one to kill.
      await waitFor(async () => runs(a, id).length + runs(b, id).length > 0 && (await gql(a.url, JOB, { id })).data.batchJob.processed >= 2000, 60_000);
      const [holder, other] = runs(a, id).length > 0 ? [a, b] : [b, a];
      holder.child.kill('SIGKILL');
      await holder.exited;
      const [atKill] = await a.query<{ status: string; processed: number }>(`SELECT "status", "processed" FROM "BatchJob" WHERE "id" = $1`, [id]);
      expect(atKill!.status).toBe('RUNNING');
      expect(Number(atKill!.processed)).toBeLessThan(ROWS);

      let job: any;
      await waitFor(async () => {
        job = (await gql(other.url, JOB, { id })).data.batchJob;
        return job.status !== 'RUNNING';
      }, 90_000);
      const bad = rows.filter((r) => r.length === 3).length;
      expect(job).toEqual({ status: 'SUCCEEDED', processed: ROWS, failed: bad, total: ROWS });
      expect(runs(other, id).length).toBeGreaterThan(0); // the survivor resumed it
      const [state] = await other.query(
        `SELECT COUNT(*) AS "rows", COUNT(*) FILTER (WHERE "predictionId" IS NULL AND "errorCode" IS NULL) AS "undone",
                COUNT(DISTINCT "predictionId") AS "predictions", COUNT(*) FILTER (WHERE "errorCode" IS NOT NULL) AS "failed"
         FROM "BatchRow" WHERE "jobId" = $1`,
        [id],
      );
      const [stored] = await other.query(`SELECT COUNT(*) AS "n" FROM "Prediction"`);
      expect(Object.fromEntries(Object.entries(state!).map(([k, v]) => [k, Number(v)]))).toEqual({ rows: ROWS, undone: 0, predictions: ROWS - bad, failed: bad });
      expect(Number(stored!.n)).toBe(ROWS - bad);
    } finally {
      for (const p of [a, b]) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
      await Promise.all([a.exited, b.exited]);
    }
  });
});
