import { expect } from 'vitest';
import type { Database } from '../../src/store/database.ts';

/** A row of every model with every column set (nullable ones both ways across the models). */
export const ROUND_TRIP = {
  prediction: {
    id: '0190b6c2-0000-7000-8000-000000000001',
    modelName: 'm',
    version: 3,
    createdAt: new Date('2026-01-02T03:04:05.678Z'),
    latencyMs: 1.25,
    inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [0.5] }],
    outputs: [{ name: 'y', datatype: 'INT64', shape: [2], data: [1, 2] }],
    generation: { prompt: 'Hi', text: ' there', finishReason: 'STOP', tokens: 6, parameters: { seed: 1 } },
    interpretation: { kind: 'CLASSIFIER', output: 'y', labels: ['a', 'b'] },
    cached: true,
    eventPending: true,
    apiKeyId: '0190b6c2-0000-7000-8000-000000000003',
  },
  job: {
    id: '0190b6c2-0000-7000-8000-000000000002',
    modelName: 'm',
    version: 3,
    status: 'RUNNING',
    format: 'CSV',
    total: 2,
    processed: 1,
    failed: 1,
    createdAt: new Date('2026-01-02T03:04:05.678Z'),
    startedAt: new Date('2026-01-02T03:04:06.000Z'),
    finishedAt: null,
    error: null,
    notifyUrl: 'http://127.0.0.1/hook',
    notifiedAt: null,
    idempotencyKey: 'k',
    interpretation: { kind: 'CLASSIFIER', output: 'y', labels: ['a', 'b'] },
    apiKeyId: null,
  },
  batchRow: { jobId: '0190b6c2-0000-7000-8000-000000000002', index: 0, input: '1,2', predictionId: null, errorCode: 'BAD_USER_INPUT', errorMessage: 'no' },
  apiKey: {
    id: '0190b6c2-0000-7000-8000-000000000003',
    name: 'ci',
    scopes: 'predict,read',
    hash: 'ab'.repeat(32),
    createdAt: new Date('2026-01-02T03:04:05.678Z'),
    revokedAt: new Date('2026-01-03T03:04:05.678Z'),
    lastUsedAt: null,
  },
  feedback: {
    predictionId: '0190b6c2-0000-7000-8000-000000000001',
    modelName: 'm',
    version: 3,
    predictedAt: new Date('2026-01-02T03:04:05.678Z'),
    servedLabel: 'a',
    servedValue: null,
    label: 'b',
    value: 2.5,
    absoluteError: 0.25,
    squaredError: 0.0625,
    recordedAt: new Date('2026-01-03T03:04:05.678Z'),
    apiKeyId: null,
    recordedBy: '0190b6c2-0000-7000-8000-000000000003',
  },
  shadowResult: {
    predictionId: '0190b6c2-0000-7000-8000-000000000001',
    modelName: 'm',
    version: 3,
    shadowVersion: 4,
    predictedAt: new Date('2026-01-02T03:04:05.678Z'),
    createdAt: new Date('2026-01-02T03:04:05.912Z'),
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] }],
    label: 'b',
    error: 'not used with outputs; set here so the column round-trips',
    latencyMs: 2.5,
    primaryLatencyMs: 1.25,
    meanAbsoluteDifference: 0.125,
    labelsAgree: false,
    apiKeyId: null,
  },
};

/** Writes each ROUND_TRIP row through the generated client and expects it back unchanged: the migrations match the Prisma schema. */
export async function expectEveryColumnToRoundTrip(db: Database): Promise<void> {
  const { prediction, job, batchRow, apiKey, feedback, shadowResult } = ROUND_TRIP;
  await db.prediction.create({ data: prediction });
  expect(await db.prediction.findUniqueOrThrow({ where: { id: prediction.id } })).toEqual(prediction);
  await db.batchJob.create({ data: job });
  expect(await db.batchJob.findUniqueOrThrow({ where: { id: job.id } })).toEqual(job);
  await db.batchRow.create({ data: batchRow });
  expect(await db.batchRow.findUniqueOrThrow({ where: { jobId_index: { jobId: job.id, index: 0 } } })).toEqual(batchRow);
  await db.apiKey.create({ data: apiKey });
  expect(await db.apiKey.findUniqueOrThrow({ where: { id: apiKey.id } })).toEqual(apiKey);
  await db.feedback.create({ data: feedback });
  expect(await db.feedback.findUniqueOrThrow({ where: { predictionId: feedback.predictionId } })).toEqual(feedback);
  await db.shadowResult.create({ data: shadowResult });
  expect(await db.shadowResult.findUniqueOrThrow({ where: { predictionId: shadowResult.predictionId } })).toEqual(shadowResult);
}
