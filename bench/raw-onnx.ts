/**
 * The raw in-process limit: onnxruntime-node alone, no HTTP, no GraphQL, no database.
 * One session on the iris model (one intra-op and one inter-op thread, all graph optimisations,
 * as a single-core budget), `session.run` awaited back to back for ~`seconds` at each batch size.
 * The input is the model's `features` float32 [n, 4]; every output is fetched.
 */
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { round } from './load.ts';

export interface RawOnnxFigure {
  batch: number;
  runs: number;
  seconds: number;
  runsPerS: number;
  rowsPerS: number;
  usPerRun: number;
}

export async function runRawOnnx(modelPath: string, seconds = 3, batches: number[] = [1, 64]): Promise<RawOnnxFigure[]> {
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  try {
    const figures: RawOnnxFigure[] = [];
    for (const batch of batches) {
      const data = new Float32Array(batch * 4);
      for (let row = 0; row < batch; row++) data.set([5.1, 3.5, 1.4, 0.2], row * 4);
      const feeds = { features: new ort.Tensor('float32', data, [batch, 4]) };
      // Warm-up for 0.5 s, not timed: first runs allocate and the loop itself gets optimised.
      const warmUntil = performance.now() + 500;
      while (performance.now() < warmUntil) await session.run(feeds);
      let runs = 0;
      const start = performance.now();
      const until = start + seconds * 1000;
      let now = start;
      while (now < until) {
        // Check the clock every 64 runs: reading it costs about as much as a tiny run.
        for (let i = 0; i < 64; i++) await session.run(feeds);
        runs += 64;
        now = performance.now();
      }
      const elapsed = (now - start) / 1000;
      figures.push({
        batch,
        runs,
        seconds: round(elapsed, 2),
        runsPerS: round(runs / elapsed, 0),
        rowsPerS: round((runs * batch) / elapsed, 0),
        usPerRun: round((elapsed * 1e6) / runs, 2),
      });
    }
    return figures;
  } finally {
    await session.release();
  }
}
