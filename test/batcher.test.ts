import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBatcher, type BatchTarget } from '../src/inference/batcher.ts';
import { VersionStats } from '../src/inference/stats.ts';
import { fromResults, toFeeds } from '../src/inference/tensors.ts';
import type { TensorData, TensorSpec } from '../src/inference/types.ts';

let session: ort.InferenceSession;
/** The batcher's target: the real iris session, as a served version wires it. */
let iris: BatchTarget & { stats: VersionStats };
/** Rows of every ONNX run the iris session makes, observed on the real session. */
const runRows: number[] = [];

beforeAll(async () => {
  session = await ort.InferenceSession.create('models/iris/1/model.onnx');
  const outputs: TensorSpec[] = [{ name: session.outputNames[0]!, datatype: 'FP32', shape: [-1, 3], dimNames: [null, null] }];
  const runStacked = async (tensors: readonly TensorData[]) => {
    const feeds = toFeeds(tensors);
    runRows.push(feeds.features!.dims[0]!);
    return fromResults({ name: 'iris', outputs }, await session.run(feeds));
  };
  const stats = new VersionStats();
  iris = {
    runStacked,
    runAlone: (tensors) => {
      stats.recordBatch(1, tensors[0]?.shape[0] ?? 1);
      return runStacked(tensors);
    },
    stats,
  };
});
afterAll(() => session.release());
const runAlone = (target: BatchTarget, tensors: TensorData[]) => target.runAlone(tensors);

const rowsTensor = (rows: number[][]): TensorData[] => [
  { name: 'features', datatype: 'FP32', shape: [rows.length, 4], data: rows.flat() },
];
let seed = 7;
const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
const randomRow = () => [4 + random() * 4, 2 + random() * 2, 1 + random() * 6, random() * 2.5];

describe('batcher', () => {
  it('gives every caller exactly its own rows, in order, under concurrency', async () => {
    const batch = createBatcher(iris, { maxBatchSize: 16, maxQueueDelayMs: 5 });
    const requests = Array.from({ length: 200 }, (_, i) => rowsTensor(Array.from({ length: 1 + (i % 3) }, randomRow)));
    runRows.length = 0;
    const batched = await Promise.all(requests.map((r) => batch(r)));
    const batchedRuns = runRows.length;
    const alone: TensorData[][] = [];
    for (const r of requests) alone.push(await runAlone(iris, r));
    expect(batchedRuns).toBeLessThan(60); // 400 rows in runs of at most 16
    batched.forEach((outputs, i) => {
      expect(outputs).toHaveLength(1);
      expect(outputs[0]!.shape).toEqual([requests[i]![0]!.shape[0], 3]);
      expect(outputs[0]!.data.length).toBe(alone[i]![0]!.data.length);
      outputs[0]!.data.forEach((p, k) => expect(p).toBeCloseTo(alone[i]![0]!.data[k]!, 6));
    });
  });

  it('never runs more than maxBatchSize rows at once', async () => {
    const batch = createBatcher(iris, { maxBatchSize: 8, maxQueueDelayMs: 5 });
    runRows.length = 0;
    await Promise.all(Array.from({ length: 64 }, () => batch(rowsTensor([randomRow()]))));
    expect(runRows).toEqual(new Array(8).fill(8));
    runRows.length = 0;
    await Promise.all([batch(rowsTensor([randomRow(), randomRow(), randomRow()])), ...Array.from({ length: 6 }, () => batch(rowsTensor([randomRow()])))]);
    expect(Math.max(...runRows)).toBeLessThanOrEqual(8);
    expect(runRows.reduce((a, b) => a + b, 0)).toBe(9);
  });

  it('holds a request maxQueueDelayMs for company and runs what arrived meanwhile with it; with 0 it runs at once', async () => {
    // The queue window is a setTimeout: move that clock by hand (ONNX Runtime's own setImmediate stays real).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const batch = createBatcher(iris, { maxBatchSize: 64, maxQueueDelayMs: 60 });
      runRows.length = 0;
      const first = batch(rowsTensor([randomRow()]));
      await vi.advanceTimersByTimeAsync(20);
      const second = batch(rowsTensor([randomRow()]));
      await vi.advanceTimersByTimeAsync(39);
      expect(runRows).toEqual([]); // 59 ms after the first: still waiting
      await vi.advanceTimersByTimeAsync(1);
      await Promise.all([first, second]);
      expect(runRows).toEqual([2]); // at 60 ms: one run for both

      const immediate = createBatcher(iris, { maxBatchSize: 64, maxQueueDelayMs: 0 });
      runRows.length = 0;
      const lone = immediate(rowsTensor([randomRow()]));
      await new Promise((r) => setImmediate(r)); // one event-loop turn, and no timer
      expect(runRows).toEqual([1]);
      await lone;
    } finally {
      vi.useRealTimers();
    }
  });

  it("one caller's failure fails only that caller", async () => {
    const batch = createBatcher(iris, { maxBatchSize: 64, maxQueueDelayMs: 5 });
    const good = Array.from({ length: 5 }, () => rowsTensor([randomRow()]));
    // Same signature as its neighbours, but 3 values for a [1, 4] shape: the stacked run fails.
    const broken: TensorData[] = [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3] }];
    // Another shape altogether: a group of its own, whose run fails.
    const wide: TensorData[] = [{ name: 'features', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }];
    const results = await Promise.allSettled([batch(good[0]!), batch(broken), batch(good[1]!), batch(wide), ...good.slice(2).map((g) => batch(g))]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    for (const r of results) if (r.status === 'fulfilled') expect(r.value[0]!.shape).toEqual([1, 3]);
  });

  it('counts requests, batches and queue delay on the version', async () => {
    const before = { ...iris.stats };
    const batch = createBatcher(iris, { maxBatchSize: 10, maxQueueDelayMs: 5 });
    await Promise.all(Array.from({ length: 30 }, () => batch(rowsTensor([randomRow()]))));
    expect(iris.stats.requests - before.requests).toBe(30);
    expect(iris.stats.batches - before.batches).toBe(3);
    expect(iris.stats.queued - before.queued).toBe(30);
    // Each of these 30 waited out its batch's 5 ms window (timers fire on whole milliseconds).
    expect((iris.stats.queueDelayTotalMs - before.queueDelayTotalMs) / 30).toBeGreaterThanOrEqual(4);
  });
});
