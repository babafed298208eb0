import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ModelNotReadyError } from '../src/errors.ts';
import { BULK_MAX_WAIT_MS } from '../src/inference/bulk-lane.ts';
import { EMPTY_MANIFEST } from '../src/inference/manifest.ts';
import { ModelRepository } from '../src/inference/repository.ts';
import { loadServedVersion } from '../src/inference/served-version.ts';
import type { ServedVersion, TensorData } from '../src/inference/types.ts';
import { writeAdderModel, writeRowMixerModel } from './helpers/onnx-models.ts';

// The bulk lane of a version, on real sessions: the adder stacks (a, b, n all [batch, ...]),
// the row mixer cannot (its rows depend on each other, so batching is off for it).
const log = pino({ level: 'silent' });
const proto = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype;
const bulk = { priority: 'bulk' } as const;

let repo: string;
let registry: ModelRepository;
let adder: ServedVersion;
let mixer: ServedVersion;
beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), 'bulk-lane-'));
  writeAdderModel(repo);
  writeRowMixerModel(repo);
  registry = new ModelRepository(repo, log);
  await registry.load();
  adder = registry.resolve('adder');
  mixer = registry.resolve('row_mixer');
});
afterAll(() => registry.close());
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** One adder request of `rows` rows whose `a` starts at `mark`: online requests are marked 1000 and up. */
const adderRequest = (mark: number, rows = 1): TensorData[] => [
  { name: 'a', datatype: 'FP32', shape: [rows, 3], data: Array.from({ length: rows * 3 }, (_, k) => mark + k / 4) },
  { name: 'b', datatype: 'FP32', shape: [rows, 3], data: Array.from({ length: rows * 3 }, (_, k) => 0.5 - k / 8) },
  { name: 'n', datatype: 'INT64', shape: [rows, 2], data: Array.from({ length: rows * 2 }, (_, k) => mark * 10 + k) },
];
const ONLINE = 1000;

/** Logs every ONNX run as it starts (with what its feeds carry) and counts the runs going at once. */
function watchRuns(describeRun: (feeds: Record<string, ort.Tensor>) => string) {
  const log = { events: [] as string[], busiest: 0 };
  let running = 0;
  const { run } = proto;
  vi.spyOn(proto, 'run').mockImplementation(async function (this: ort.InferenceSession, ...args: unknown[]) {
    log.events.push(describeRun(args[0] as Record<string, ort.Tensor>));
    log.busiest = Math.max(log.busiest, ++running);
    try {
      return await (run as (...a: unknown[]) => Promise<ort.InferenceSession.ReturnType>).apply(this, args);
    } finally {
      running--;
    }
  });
  return log;
}
const adderRun = (feeds: Record<string, ort.Tensor>) => ((feeds.a!.data as Float32Array)[0]! >= ONLINE ? 'online run' : 'bulk run');

async function aloneEach(version: ServedVersion, requests: TensorData[][]): Promise<TensorData[][]> {
  const answers = [];
  for (const r of requests) answers.push(await version.run(r));
  return answers;
}

function expectSameAnswers(actual: TensorData[][], expected: TensorData[][]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((outputs, i) => {
    expect(outputs.map((o) => [o.name, o.shape])).toEqual(expected[i]!.map((o) => [o.name, o.shape]));
    outputs.forEach((o, k) => o.data.forEach((x, j) => expect(x).toBeCloseTo(expected[i]![k]!.data[j]!, 6)));
  });
}

describe('bulk lane', () => {
  it('stacks bulk requests submitted together into runs of at most maxBatchSize rows, each answered exactly as a lone run', async () => {
    const requests = Array.from({ length: 150 }, (_, i) => adderRequest(i, 1 + (i % 3)));
    const rows = requests.reduce((sum, r) => sum + r[0]!.shape[0]!, 0);
    const before = { ...adder.stats };
    const runRows = watchRuns((feeds) => String(feeds.a!.dims[0]));
    const answers = await Promise.all(requests.map((r) => adder.run(r, bulk)));
    const runs = adder.stats.runs - before.runs;
    vi.restoreAllMocks();

    expect(rows).toBe(300);
    expect(runs).toBeLessThan(requests.length);
    expect(runRows.events).toHaveLength(runs);
    expect(Math.max(...runRows.events.map(Number))).toBeLessThanOrEqual(adder.batching.maxBatchSize);
    expect(runRows.busiest).toBe(1); // one bulk dispatch at a time
    expect(adder.stats.requests - before.requests).toBe(requests.length);
    expect(adder.stats.rows - before.rows).toBe(rows);
    expect(adder.stats.batches - before.batches).toBe(runs);
    expectSameAnswers(answers, await aloneEach(adder, requests));
  });

  it('lets online requests submitted in the same tick run and complete before any queued bulk request starts', async () => {
    // The 100 ms cap never fires here: the order is the lanes' doing alone.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const runs = watchRuns(adderRun);
    const bulkAnswers = Array.from({ length: 10 }, (_, i) => adder.run(adderRequest(i), bulk).then(() => runs.events.push('bulk done')));
    const onlineAnswers = Array.from({ length: 4 }, (_, i) => adder.run(adderRequest(ONLINE + i)).then(() => runs.events.push('online done')));
    await Promise.all([...bulkAnswers, ...onlineAnswers]);
    expect(runs.events).toEqual(['online run', ...Array<string>(4).fill('online done'), 'bulk run', ...Array<string>(10).fill('bulk done')]);
  });

  it('fails a bulk request with a bad row alone; its neighbours in the stacked run are answered', async () => {
    const good = Array.from({ length: 6 }, (_, i) => adderRequest(i));
    // The signature of its neighbours, but 2 values for a [1, 3] tensor: the stacked run fails.
    const broken = adderRequest(99);
    broken[0] = { ...broken[0]!, data: [1, 2] };
    const runs = watchRuns((feeds) => String(feeds.a!.dims[0]));
    const settled = await Promise.allSettled([...good.slice(0, 3), broken, ...good.slice(3)].map((r) => adder.run(r, bulk)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    // The stacked tensors (20 values for [7, 3]) never reach the session; then each request runs alone.
    expect(runs.events).toEqual(Array<string>(6).fill('1'));
    vi.restoreAllMocks();
    const answers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    expectSameAnswers(answers, await aloneEach(adder, good));
  });

  it('runs bulk requests of a version without batching alone, one at a time, and lets online work in between', async () => {
    expect(mixer.batching.enabled).toBe(false);
    const requests = Array.from({ length: 6 }, (_, i): TensorData[] => [
      { name: 'x', datatype: 'FP32', shape: [2, 3], data: [i, 2 * i, 3, 1, -i, 0.5] },
    ]);
    const online: TensorData[] = [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [ONLINE, 0, 0] }];
    const before = { ...mixer.stats };
    const runs = watchRuns((feeds) => (feeds.x!.dims[0] === 1 ? 'online run' : 'bulk run'));
    let onlineDone: Promise<unknown> | undefined;
    const answers = await Promise.all(
      requests.map((r, i) =>
        mixer.run(r, bulk).then((outputs) => {
          // The moment the first bulk request is answered, an online one arrives: it goes before the second.
          if (i === 0) onlineDone = mixer.run(online).then(() => runs.events.push('online done'));
          return outputs;
        }),
      ),
    );
    await onlineDone;

    expect(runs.events).toEqual(['bulk run', 'online run', 'online done', ...Array<string>(5).fill('bulk run')]);
    expect(runs.busiest).toBe(1);
    expect(mixer.stats.runs - before.runs).toBe(7);
    expect(mixer.stats.batches - before.batches).toBe(7);
    vi.restoreAllMocks();
    expectSameAnswers(answers, await aloneEach(mixer, requests)); // stacked rows would have mixed
  });

  it('is not starved by a continuous online load: under it, bulk moves one dispatch per BULK_MAX_WAIT_MS', async () => {
    // The wait is a setTimeout: move that clock by hand while real online requests keep coming.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const runs = watchRuns(adderRun);
    const bulkRuns = () => runs.events.filter((e) => e === 'bulk run').length;
    let online = 0;
    let stop = false;
    // Four clients, each sending its next request as soon as it has an answer: online work never stops.
    const client = async () => {
      while (!stop) {
        await adder.run(adderRequest(ONLINE));
        online++;
      }
    };
    const clients = Array.from({ length: 4 }, client);
    const onlineServed = async (more: number) => {
      const target = online + more;
      while (online < target) await new Promise((resolve) => setImmediate(resolve));
    };
    // Two full runs' worth of rows: two bulk dispatches.
    const requests = [adderRequest(0, adder.batching.maxBatchSize), adderRequest(1, adder.batching.maxBatchSize)];
    const pending = requests.map((r) => adder.run(r, bulk));
    let answered: TensorData[][];
    try {
      await onlineServed(200);
      await vi.advanceTimersByTimeAsync(BULK_MAX_WAIT_MS - 1);
      await onlineServed(200);
      expect(bulkRuns()).toBe(0); // held back while online work goes on
      await vi.advanceTimersByTimeAsync(1);
      await onlineServed(200);
      expect(bulkRuns()).toBe(1); // waited out: one dispatch, in the middle of the online load
      await pending[0];
      await onlineServed(200);
      await vi.advanceTimersByTimeAsync(BULK_MAX_WAIT_MS - 1);
      await onlineServed(200);
      expect(bulkRuns()).toBe(1); // the next waits its own turn, counted from the end of the last dispatch
      await vi.advanceTimersByTimeAsync(1);
      await onlineServed(200);
      expect(bulkRuns()).toBe(2);
      answered = await Promise.all(pending);
    } finally {
      stop = true;
      await Promise.all(clients);
    }

    vi.restoreAllMocks();
    expectSameAnswers(answered, await aloneEach(adder, requests));
  });

  it('close() waits for queued bulk requests; afterwards bulk requests are refused like online ones', async () => {
    const served = await loadServedVersion({ name: 'adder', version: 1, path: join(repo, 'adder', '1', 'model.onnx'), manifest: EMPTY_MANIFEST }, { log });
    const events: string[] = [];
    const queued = Array.from({ length: 5 }, (_, i) => served.run(adderRequest(i), bulk).then(() => events.push('bulk done')));
    const closing = served.close().then(() => events.push('closed'));
    await Promise.all([...queued, closing]);
    expect(events).toEqual([...Array<string>(5).fill('bulk done'), 'closed']);
    expect(served.stats.requests).toBe(5);
    await expect(served.run(adderRequest(0), bulk)).rejects.toThrow(ModelNotReadyError);
    await expect(served.run(adderRequest(0), bulk)).rejects.toMatchObject({ details: { status: 'CLOSED' } });
  });
});
