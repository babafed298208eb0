import { performance } from 'node:perf_hooks';
import { newId } from './ids.ts';
import { outcomeOf, type Interpretation } from '../inference/interpretation.ts';
import { requestTensors } from '../inference/tensors.ts';
import type { ServedVersion, TensorData } from '../inference/types.ts';
import type { BatchFormat, BatchRowInput, ScoredRow } from './batch-job-store.ts';
import { isChunkFatal, parseRow, rowErrorOf } from './batch-rows.ts';

/**
 * Scores one chunk of batch rows: each row is read and checked exactly as `predict`
 * checks a request (requestTensors), then run on the version's bulk lane, which stacks
 * rows like the online batcher but yields to online requests. A row that cannot be read,
 * does not fit the model, or fails alone in ONNX gets its error; the others their
 * predictions. Throws (and nothing of the chunk counts) when the version itself stops
 * serving, e.g. during shutdown or a swap: that is not the rows' fault.
 *
 * Shared by the job worker and the CLI, so both give the same answers.
 */
export async function scoreRows(version: ServedVersion, rows: readonly BatchRowInput[], format: BatchFormat, interpretation: Interpretation): Promise<ScoredRow[]> {
  const started = performance.now();
  const prepared = rows.map((row): { index: number; inputs?: TensorData[]; error?: unknown } => {
    try {
      return { index: row.index, inputs: requestTensors(version, parseRow(row.input, format)) };
    } catch (error) {
      return { index: row.index, error };
    }
  });
  const settled = await Promise.allSettled(
    prepared.map(async (p) => {
      if (!p.inputs) throw p.error instanceof Error ? p.error : new Error(String(p.error));
      return version.run(p.inputs, { priority: 'bulk' });
    }),
  );
  for (const s of settled) if (s.status === 'rejected' && isChunkFatal(s.reason)) throw s.reason;
  // Rows of a chunk run together: each is charged an equal share of the chunk's time.
  const latencyMs = (performance.now() - started) / Math.max(1, rows.length);
  const createdAt = new Date();
  return prepared.map((p, k): ScoredRow => {
    const result = settled[k]!;
    if (result.status === 'rejected') return { index: p.index, error: rowErrorOf(result.reason) };
    const outputs = result.value;
    return {
      index: p.index,
      prediction: {
        id: newId(),
        modelName: version.name,
        version: version.version,
        createdAt,
        latencyMs,
        inputs: p.inputs!,
        outputs,
        interpretation,
        outcome: outcomeOf(outputs, interpretation),
      },
    };
  });
}
