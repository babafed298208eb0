import { describe, expect, it } from 'vitest';
import { startGatewayProcess, waitFor } from './helpers/process.ts';

const ROWS = 30_000;

async function gql(url: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return (await res.json());
}

const JOB = `query ($id: ID!) { batchJob(id: $id) { status processed failed total } }`;

describe('batch job under SIGKILL', () => {
  it('a job killed mid-way with kill -9 finishes after restart with every row processed exactly once', { timeout: 120_000 }, async () => {
    const env = { BATCH_CHUNK_ROWS: '200' };
    const first = await startGatewayProcess(env);
    await waitFor(async () => (await fetch(`${first.url}/readyz`)).status === 200);
    // Every 7th row is bad: failed rows must be exactly-once too.
    const rows = Array.from({ length: ROWS }, (_, i) => (i % 7 === 3 ? [1, 2, 3] : [4 + (i % 40) / 10, 3, 1.4 + (i % 50) / 10, 0.2]));
    const submitted = await gql(first.url, `mutation ($rows: [[Float!]!]) { submitBatchJob(input: { model: "iris", rows: $rows }) { id total } }`, { rows });
    const id: string = submitted.data.submitBatchJob.id;

    let seen = 0;
    await waitFor(async () => {
      seen = (await gql(first.url, JOB, { id })).data.batchJob.processed;
      return seen >= 2000;
    }, 60_000);
    first.child.kill('SIGKILL');
    await first.exited;

    const [atKill] = await first.query(`SELECT "status", "processed" FROM "BatchJob" WHERE "id" = $1`, [id]);
    expect(atKill!.status).toBe('RUNNING');
    expect(atKill!.processed).toBeGreaterThanOrEqual(seen);
    expect(atKill!.processed).toBeLessThan(ROWS); // killed mid-way, not after the end

    const second = await startGatewayProcess({ ...env, DATABASE_URL: first.databaseUrl });
    let job: any;
    await waitFor(async () => {
      job = (await gql(second.url, JOB, { id })).data.batchJob;
      return job.status !== 'RUNNING' && job.status !== 'QUEUED';
    }, 90_000);
    second.child.kill('SIGTERM');
    await second.exited;

    const badRows = rows.filter((r) => r.length === 3).length;
    expect(job).toEqual({ status: 'SUCCEEDED', processed: ROWS, failed: badRows, total: ROWS });
    const [rowStates] = await first.query(
      `SELECT COUNT(*) AS "rows", COUNT(DISTINCT "index") AS "indices",
              COUNT(*) FILTER (WHERE "predictionId" IS NOT NULL) AS "predicted", COUNT(*) FILTER (WHERE "errorCode" IS NOT NULL) AS "failed",
              COUNT(*) FILTER (WHERE "predictionId" IS NULL AND "errorCode" IS NULL) AS "undone", COUNT(DISTINCT "predictionId") AS "distinctPredictions"
       FROM "BatchRow" WHERE "jobId" = $1`,
      [id],
    );
    // The history holds one prediction per good row: none from a chunk lost to the kill, none twice.
    const [{ predictions }] = (await first.query(`SELECT COUNT(*) AS "predictions" FROM "Prediction"`)) as [{ predictions: number }];
    expect(rowStates).toEqual({ rows: ROWS, indices: ROWS, predicted: ROWS - badRows, failed: badRows, undone: 0, distinctPredictions: ROWS - badRows });
    expect(predictions).toBe(ROWS - badRows);
  });
});
