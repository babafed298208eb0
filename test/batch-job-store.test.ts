// Not UTC, so a time shifted on its way through a writer shows.
process.env.TZ = 'Asia/Kolkata';

import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyConflictError, type BatchJobStore, type NewBatchJob, type ScoredRow } from '../src/serving/batch-job-store.ts';
import type { PredictionRecord } from '../src/serving/records.ts';
import { createBatchJobRepository } from '../src/store/batch-job-repository.ts';
import { openStore, type Store } from '../src/store/database.ts';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.ts';

/** The store as two gateway replicas on one database would each have it: connections of its own. */
let database: TestDatabase;
let replicas: Store[];
let jobs: BatchJobStore;
beforeAll(async () => {
  database = await createTestDatabase();
  replicas = [await openStore(database.url), await openStore(database.url)];
  jobs = createBatchJobRepository(replicas[0]!.db, replicas[0]!.batchJobs);
});
afterAll(async () => {
  for (const replica of replicas) await replica.close();
  await database.drop();
});

const newJob = (overrides: Partial<NewBatchJob> = {}): NewBatchJob => ({
  id: uuidv7(),
  modelName: 'iris',
  version: 1,
  format: 'CSV',
  createdAt: new Date('2026-03-29T01:30:00.123Z'),
  notifyUrl: null,
  idempotencyKey: null,
  interpretation: { kind: 'CLASSIFIER', output: 'probabilities', labels: ['a', 'b', 'c'] },
  ...overrides,
});

async function* batches(...lists: string[][]) {
  for (const list of lists) yield list;
}

const prediction = (): PredictionRecord => ({
  id: uuidv7(),
  modelName: 'iris',
  version: 1,
  createdAt: new Date(),
  latencyMs: 1,
  inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3], data: [0.25, 0.25, 0.5] }],
});

const scored = (indices: number[]): ScoredRow[] =>
  indices.map((index) => (index % 3 === 2 ? { index, error: { code: 'BAD_USER_INPUT', message: `row ${index} is bad` } } : { index, prediction: prediction() }));

/** A job of `rows` input rows, claimed (RUNNING). */
async function runningJob(rows: number) {
  const job = await jobs.create(newJob(), batches(Array.from({ length: rows }, (_, i) => `${i},1,1,1`)));
  await database.query(`UPDATE "BatchJob" SET "status" = 'RUNNING' WHERE "id" = $1`, [job.id]);
  return job;
}

const count = (sql: string, params?: unknown[]) => database.value(sql, params);

describe('the batch-job store', () => {
  it('creates a job with its rows, invisible until every row is written, with exact times and interpretation', async () => {
    const job = newJob({ idempotencyKey: 'k-1' });
    let seenWhileUploading: unknown = 'not read';
    const created = await jobs.create(
      job,
      (async function* () {
        yield ['1,2,3,4', '5,6,7,8'];
        seenWhileUploading = await jobs.get(job.id);
        yield ['9,10,11,12'];
      })(),
    );
    expect(seenWhileUploading).toBeUndefined();
    expect(created).toMatchObject({ id: job.id, status: 'QUEUED', total: 3, processed: 0, createdAt: job.createdAt, interpretation: job.interpretation });
    expect(await jobs.get(job.id)).toEqual(created);
    expect(await jobs.readRows(job.id, 1, 10)).toEqual([
      { index: 1, input: '5,6,7,8' },
      { index: 2, input: '9,10,11,12' },
    ]);
    await expect(jobs.create(newJob({ idempotencyKey: 'k-1' }), batches(['1']))).rejects.toThrow(IdempotencyConflictError);
  });

  it('deletes a job whose rows fail to arrive, and jobs left UPLOADING at start, rows and all', async () => {
    const failing = newJob();
    await expect(
      jobs.create(
        failing,
        (async function* () {
          yield ['1,2,3,4'];
          throw new Error('the upload broke');
        })(),
      ),
    ).rejects.toThrow('the upload broke');
    expect(await count(`SELECT COUNT(*) FROM "BatchJob" WHERE "id" = $1`, [failing.id])).toBe(0);
    expect(await count(`SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = $1`, [failing.id])).toBe(0);

    const left = newJob();
    await replicas[0]!.batchJobs.insertJob(left);
    await replicas[0]!.batchJobs.insertRows(left.id, 0, ['1', '2']);
    expect(await jobs.deleteUnfinishedUploads(new Date(Date.now() + 60_000))).toBe(1);
    expect(await count(`SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = $1`, [left.id])).toBe(0);
  });

  it('commits a chunk whole: predictions, row results and counters; a row done twice writes nothing', async () => {
    const job = await runningJob(6);
    const predictionsBefore = await count('SELECT COUNT(*) FROM "Prediction"');
    const first = await jobs.commitChunk(job.id, scored([0, 1, 2]));
    expect(first).toMatchObject({ status: 'RUNNING', processed: 3, failed: 1 });
    expect(await jobs.results(job.id, 10)).toEqual([
      { index: 0, predictionId: expect.any(String), error: null },
      { index: 1, predictionId: expect.any(String), error: null },
      { index: 2, predictionId: null, error: { code: 'BAD_USER_INPUT', message: 'row 2 is bad' } },
    ]);
    expect(await count('SELECT COUNT(*) FROM "Prediction"')).toBe(predictionsBefore + 2);

    // Row 2 again, inside a chunk of new rows: the whole chunk is refused.
    await expect(jobs.commitChunk(job.id, scored([2, 3, 4]))).rejects.toThrow(/already done or do not exist/);
    await expect(jobs.commitChunk(job.id, scored([5, 6]))).rejects.toThrow(/already done or do not exist/); // 6 does not exist
    expect(await count('SELECT COUNT(*) FROM "Prediction"')).toBe(predictionsBefore + 2);
    expect(await jobs.get(job.id)).toMatchObject({ processed: 3, failed: 1 });
    expect(await count(`SELECT COUNT(*) FROM "BatchRow" WHERE "jobId" = $1 AND "index" > 2 AND ("predictionId" IS NOT NULL OR "errorCode" IS NOT NULL)`, [job.id])).toBe(0);
  });

  it('writes nothing for a chunk of a job that is no longer RUNNING', async () => {
    const job = await runningJob(4);
    const cancelled = await jobs.cancel(job.id);
    expect(cancelled).toMatchObject({ status: 'CANCELLED', finishedAt: expect.any(Date) });
    const predictionsBefore = await count('SELECT COUNT(*) FROM "Prediction"');
    expect(await jobs.commitChunk(job.id, scored([0, 1]))).toBeUndefined();
    expect(await count('SELECT COUNT(*) FROM "Prediction"')).toBe(predictionsBefore);
    expect(await jobs.finish(job.id, 'SUCCEEDED')).toBeUndefined();
    expect(await jobs.cancel(job.id)).toEqual(cancelled); // already final: unchanged
  });

  it('finishes, and records the notification, with times read back exactly', async () => {
    const job = await runningJob(1);
    const before = Date.now();
    const done = await jobs.finish(job.id, 'FAILED', 'the model broke');
    expect(done).toMatchObject({ status: 'FAILED', error: 'the model broke' });
    // Millisecond times, read back from RETURNING, equal what Prisma reads.
    expect(done!.finishedAt!.getTime()).toBeGreaterThanOrEqual(before);
    expect(done!.finishedAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect((await jobs.get(job.id))!.finishedAt).toEqual(done!.finishedAt);
    await jobs.markNotified(job.id);
    const notified = (await jobs.get(job.id))!.notifiedAt!;
    expect(Math.abs(notified.getTime() - Date.now())).toBeLessThan(60_000); // not shifted by hours
  });

  it('two replicas claiming at once never take the same job, and take every queued one', async () => {
    const queued = new Set<string>();
    for (let i = 0; i < 30; i++) queued.add((await jobs.create(newJob(), batches(['1,2,3,4']))).id);
    const stores = replicas.map((r) => createBatchJobRepository(r.db, r.batchJobs));
    const claimed: string[][] = [[], []];
    await Promise.all(
      stores.map(async (store, replica) => {
        // Concurrent claims per replica too, as BATCH_CONCURRENCY > 1 makes them.
        await Promise.all(
          Array.from({ length: 3 }, async () => {
            for (let job = await store.claimNext(); job; job = await store.claimNext()) {
              expect(job.status).toBe('RUNNING');
              claimed[replica]!.push(job.id);
            }
          }),
        );
      }),
    );
    const all = [...claimed[0]!, ...claimed[1]!];
    expect(all.filter((id) => queued.has(id)).sort()).toEqual([...queued].sort()); // each exactly once
    expect(new Set(all).size).toBe(all.length);
  });
});
