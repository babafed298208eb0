import DataLoader from 'dataloader';
import { performance } from 'node:perf_hooks';
import type { VersionStats } from './stats.ts';
import type { BatchingOptions, TensorData } from './types.ts';

/** What the batcher runs on: one version's session, seen as two functions, and its counters. */
export interface BatchTarget {
  /** One request on its own (counts itself as a batch of one). */
  runAlone(tensors: readonly TensorData[]): Promise<TensorData[]>;
  /** One ONNX run on already stacked tensors; counts nothing but the run. */
  runStacked(tensors: readonly TensorData[]): Promise<TensorData[]>;
  stats: Pick<VersionStats, 'recordBatch' | 'recordQueueDelay' | 'waiting' | 'bulkWaiting'>;
}

/** One request as the stacking code sees it. */
export interface Job {
  tensors: readonly TensorData[];
  rows: number;
  /** Inputs' names, datatypes and non-batch dimensions: only equal signatures stack. */
  signature: string;
}

/**
 * Stacks concurrent requests for one model version into one ONNX run along the first
 * dimension and hands each caller exactly its own rows, in order. A long-lived
 * DataLoader (no cache) collects the requests. A request whose inputs disagree on the
 * first dimension has no row count and is never stacked: it runs alone. If a stacked
 * run fails, each request is run alone, so one bad request never fails its neighbours.
 */
export function createBatcher(target: BatchTarget, options: BatchingOptions): (tensors: readonly TensorData[]) => Promise<TensorData[]> {
  const loader = new DataLoader<Job & { enqueuedAt: number }, TensorData[]>(
    async (jobs) => {
      const dispatchedAt = performance.now();
      for (const job of jobs) target.stats.recordQueueDelay(dispatchedAt - job.enqueuedAt);
      return runJobs(target, jobs, options.maxBatchSize);
    },
    {
      cache: false,
      maxBatchSize: Math.max(1, options.maxBatchSize),
      batchScheduleFn: options.maxQueueDelayMs > 0 ? (dispatch) => setTimeout(dispatch, options.maxQueueDelayMs) : (dispatch) => setImmediate(dispatch),
    },
  );
  return (tensors) => {
    const job = jobOf(tensors);
    if (!job) return target.runAlone(tensors);
    target.stats.waiting++;
    return loader.load({ ...job, enqueuedAt: performance.now() });
  };
}

/** The request as a stackable job, or undefined when its inputs share no first dimension to stack along. */
export function jobOf(tensors: readonly TensorData[]): Job | undefined {
  const rows = tensors[0]?.shape[0];
  if (rows === undefined || !tensors.every((t) => t.shape.length >= 1 && t.shape[0] === rows)) return undefined;
  return { tensors, rows, signature: tensors.map((t) => `${t.name}:${t.datatype}:${t.shape.slice(1).join('x')}`).join('|') };
}

/**
 * Runs jobs stacked: those of equal signature in runs of at most maxRows rows. The result
 * has one slot per job, in order: its own outputs, or the Error of its lone run when its
 * stacked run failed (then every job of that run was retried alone).
 */
export async function runJobs(target: BatchTarget, jobs: readonly Job[], maxRows: number): Promise<Array<TensorData[] | Error>> {
  const results = new Array<TensorData[] | Error>(jobs.length);
  const groups = new Map<string, number[]>();
  jobs.forEach((job, i) => groups.set(job.signature, [...(groups.get(job.signature) ?? []), i]));
  await Promise.all([...groups.values()].flatMap((indices) => chunkByRows(indices, jobs, maxRows)).map((chunk) => runChunk(target, chunk, jobs, results)));
  return results;
}

/** Consecutive runs of jobs holding at most maxRows rows (a single larger job runs alone). */
function chunkByRows(indices: number[], jobs: readonly Job[], maxRows: number): number[][] {
  const chunks: number[][] = [];
  let current: number[] = [];
  let rows = 0;
  for (const i of indices) {
    const r = jobs[i]!.rows;
    if (current.length > 0 && rows + r > maxRows) {
      chunks.push(current);
      current = [];
      rows = 0;
    }
    current.push(i);
    rows += r;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

async function runChunk(target: BatchTarget, chunk: number[], jobs: readonly Job[], results: Array<TensorData[] | Error>): Promise<void> {
  const settleAlone = async (i: number) => {
    results[i] = await target.runAlone(jobs[i]!.tensors).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  };
  if (chunk.length === 1) return settleAlone(chunk[0]!);

  const members = chunk.map((i) => jobs[i]!);
  const totalRows = members.reduce((sum, job) => sum + job.rows, 0);
  const stacked: TensorData[] = members[0]!.tensors.map((first, k) => ({
    name: first.name,
    datatype: first.datatype,
    shape: [totalRows, ...first.shape.slice(1)],
    data: members.flatMap((job) => job.tensors[k]!.data),
  }));
  let outputs: TensorData[];
  try {
    outputs = await target.runStacked(stacked);
  } catch {
    await Promise.all(chunk.map(settleAlone));
    return;
  }
  if (outputs.some((o) => o.shape[0] !== totalRows)) {
    // Not row-wise after all: answer each request from its own run.
    await Promise.all(chunk.map(settleAlone));
    return;
  }
  target.stats.recordBatch(chunk.length, totalRows);
  let row = 0;
  for (const i of chunk) {
    const rows = jobs[i]!.rows;
    results[i] = outputs.map((o) => {
      const width = o.data.length / totalRows;
      return { name: o.name, datatype: o.datatype, shape: [rows, ...o.shape.slice(1)], data: o.data.slice(row * width, (row + rows) * width) };
    });
    row += rows;
  }
}
