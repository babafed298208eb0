import { expect } from 'vitest';
import type { TestGateway } from './gateway.ts';

/** ONNX runs of every served version so far (predict batches and generation steps). */
export async function onnxRuns(gw: TestGateway): Promise<number> {
  const res = await gw.gql<{ models: Array<{ versions: Array<{ stats: { runs: number } }> }> }>('{ models { versions { stats { runs } } } }');
  return res.body.data!.models.flatMap((m) => m.versions).reduce((sum, v) => sum + v.stats.runs, 0);
}

export const countJobs = async (gw: TestGateway) => (await gw.query<{ n: number }>('SELECT COUNT(*) AS "n" FROM "BatchJob"'))[0]!.n;

/**
 * Runs `refused` and checks it cost nothing: no ONNX run, no prediction row, no batch job
 * (the counts before and after are equal). Returns what `refused` returned.
 */
export async function refusedCheaply<T>(gw: TestGateway, refused: () => Promise<T>): Promise<T> {
  const before = { runs: await onnxRuns(gw), rows: await gw.countRows(), jobs: await countJobs(gw) };
  const result = await refused();
  expect({ runs: await onnxRuns(gw), rows: await gw.countRows(), jobs: await countJobs(gw) }).toEqual(before);
  return result;
}
