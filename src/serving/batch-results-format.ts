import type { Interpretation } from '../inference/interpretation.ts';
import type { RowError } from './batch-job-store.ts';
import type { PredictionRecord } from './records.ts';

/**
 * Batch results as files: the download route (`/batch-jobs/<id>/results.csv|.jsonl`) and
 * the CLI write the same lines.
 *
 * CSV columns: index, status (ok | error), prediction_id, label, value, one `p_<label>`
 * column per class of a classifier with labels, error_code, error_message, and outputs
 * (every output tensor of the row as a JSON object of name → numbers).
 * JSON Lines: `{ index, predictionId, label, value, scores, outputs }` or `{ index, error }`.
 */
export interface ResultRow {
  index: number;
  /** Null when the row failed, or when nothing stored it (the CLI). */
  predictionId: string | null;
  prediction: PredictionRecord | null;
  error: RowError | null;
}

export type ResultFormat = 'csv' | 'jsonl';

const csvField = (value: string | number | null | undefined): string => {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

const scoreLabels = (interpretation: Interpretation | null) => (interpretation?.kind === 'CLASSIFIER' ? (interpretation.labels ?? []) : []);

const outputsOf = (p: PredictionRecord) => Object.fromEntries(p.outputs.map((o) => [o.name, o.data]));

export function csvHeader(interpretation: Interpretation | null): string {
  const scores = scoreLabels(interpretation).map((label) => `p_${label}`);
  return ['index', 'status', 'prediction_id', 'label', 'value', ...scores, 'error_code', 'error_message', 'outputs'].map(csvField).join(',') + '\n';
}

export function csvLine(row: ResultRow, interpretation: Interpretation | null): string {
  const labels = scoreLabels(interpretation);
  const outcome = row.prediction?.outcome;
  const byIndex = new Map(outcome?.scores?.map((s) => [s.index, s.probability]) ?? []);
  return (
    [
      row.index,
      row.error ? 'error' : 'ok',
      row.predictionId,
      outcome?.label,
      outcome?.value,
      ...labels.map((_, k) => (row.prediction ? byIndex.get(k) : null)),
      row.error?.code,
      row.error?.message,
      row.prediction ? JSON.stringify(outputsOf(row.prediction)) : null,
    ]
      .map(csvField)
      .join(',') + '\n'
  );
}

export function jsonLine(row: ResultRow): string {
  if (row.error || !row.prediction) return JSON.stringify({ index: row.index, error: row.error }) + '\n';
  const outcome = row.prediction.outcome;
  return (
    JSON.stringify({
      index: row.index,
      predictionId: row.predictionId,
      label: outcome?.label ?? null,
      value: outcome?.value ?? null,
      scores: outcome?.scores ?? null,
      outputs: outputsOf(row.prediction),
    }) + '\n'
  );
}

/** Every line of a results file, pages of rows pulled one at a time (never the whole set in memory). */
export async function* resultLines(format: ResultFormat, interpretation: Interpretation | null, pages: AsyncIterable<readonly ResultRow[]>): AsyncGenerator<string> {
  if (format === 'csv') yield csvHeader(interpretation);
  for await (const page of pages) {
    let text = '';
    for (const row of page) text += format === 'csv' ? csvLine(row, interpretation) : jsonLine(row);
    yield text;
  }
}
