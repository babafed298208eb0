import { createReadStream } from 'node:fs';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { BadUserInputError, GatewayError } from '../errors.ts';
import { DATATYPES, type TensorDatatype } from '../inference/datatypes.ts';
import type { PredictRequest } from '../inference/tensors.ts';
import type { BatchFormat, RowError } from './batch-job-store.ts';

/**
 * Batch input, row by row. A row is stored as the text it was sent as (one CSV line, or
 * one JSON value) and read when it is scored, so a row that cannot be read fails alone
 * with its reason while the job goes on.
 *
 * CSV: numbers separated by commas, in the model's feature order; fields may be quoted.
 * The first line is a header (and skipped) when none of its fields is a number.
 * JSON Lines: an array of numbers (the features), or an object `{ "features": [...] }` or
 * `{ "inputs": [{ "name", "data", "shape"? }] }` as in `predict`. Blank lines are not rows.
 */

/** A row that cannot be read. */
export class RowParseError extends Error {
  override readonly name = 'RowParseError';
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(inf|infinity|nan)$/i;

const unquote = (field: string) => {
  const trimmed = field.trim();
  return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1).replaceAll('""', '"').trim() : trimmed;
};

function parseCsvLine(line: string): number[] {
  return line.split(',').map((raw, k) => {
    const field = unquote(raw);
    if (field === '') throw new RowParseError(`unparsable CSV line: field ${k + 1} is empty`);
    if (NON_FINITE.test(field)) throw new RowParseError(`field ${k + 1} is \`${field}\`, not a finite number`);
    if (!NUMBER.test(field)) throw new RowParseError(`unparsable CSV line: field ${k + 1} \`${field.slice(0, 40)}\` is not a number`);
    const value = Number(field);
    if (!Number.isFinite(value)) throw new RowParseError(`field ${k + 1} is \`${field.slice(0, 40)}\`, not a finite number`);
    return value;
  });
}

/** A CSV header: no field of the line reads as a number. */
export const isCsvHeader = (line: string) => line.split(',').every((raw) => !NUMBER.test(unquote(raw)));

const jsonRow = z.union([
  z.array(z.number()).transform((features): PredictRequest => ({ features })),
  z
    .object({
      features: z.array(z.number()).optional(),
      inputs: z
        .array(z.object({ name: z.string(), datatype: z.enum(Object.keys(DATATYPES) as [TensorDatatype, ...TensorDatatype[]]), shape: z.array(z.number().int().min(0)), data: z.array(z.number()) }))
        .optional(),
    })
    .strict()
    .transform((row): PredictRequest => ({ features: row.features ?? null, inputs: row.inputs ?? null })),
]);

function parseJsonRow(line: string): PredictRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new RowParseError(`unparsable JSON line: ${(error as Error).message}`);
  }
  const parsed = jsonRow.safeParse(value);
  if (!parsed.success) throw new RowParseError('expected a JSON array of numbers, or an object with `features` or `inputs` (tensors with name, datatype, shape, data)');
  return parsed.data;
}

/** The predict request a stored row stands for; throws RowParseError when it cannot be read. */
export function parseRow(input: string, format: BatchFormat): PredictRequest {
  return format === 'CSV' ? { features: parseCsvLine(input) } : parseJsonRow(input);
}

/** Why a row failed, from what checking or running it threw (GatewayErrors other than bad input are not row errors). */
export function rowErrorOf(error: unknown): RowError {
  if (error instanceof RowParseError) return { code: 'BAD_USER_INPUT', message: error.message };
  if (error instanceof BadUserInputError) {
    return { code: 'BAD_USER_INPUT', message: error.issues.map((i) => `${i.path.slice(1).join('.') || 'row'}: ${i.message}`).join('; ') };
  }
  return { code: 'INFERENCE_FAILED', message: error instanceof Error ? error.message : String(error) };
}

/** Whether an error stops a chunk (the model went away, the server is stopping) rather than failing a row. */
export const isChunkFatal = (error: unknown) => error instanceof GatewayError && error.code !== 'BAD_USER_INPUT';

/** The format of an uploaded file: asked for, else by extension or media type, else by its first character. */
export function formatOfUpload(file: { filename: string; mimetype: string }, firstLine: string | undefined): BatchFormat {
  const ext = extname(file.filename).toLowerCase();
  if (ext === '.csv' || file.mimetype === 'text/csv') return 'CSV';
  if (ext === '.jsonl' || ext === '.ndjson' || file.mimetype.includes('ndjson') || file.mimetype.includes('jsonl')) return 'JSONL';
  const first = firstLine?.trimStart()[0];
  return first === '[' || first === '{' ? 'JSONL' : 'CSV';
}

/** The first non-blank line of a file (for sniffing its format). */
export async function firstLineOf(path: string): Promise<string | undefined> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  try {
    for await (const line of lines) if (line.trim() !== '') return line;
    return undefined;
  } finally {
    lines.close();
  }
}

export interface RowBatchOptions {
  /** More rows than this: BadUserInputError (nothing of the job is kept). */
  maxRows: number;
  /** Rows per yielded batch. @default 5000 */
  batchSize?: number;
  /** The argument path named in a limit error. */
  path?: ReadonlyArray<string | number>;
}

const tooMany = (options: RowBatchOptions) =>
  new BadUserInputError([{ path: options.path ?? ['input'], message: `more than ${options.maxRows} rows (the limit is MAX_BATCH_ROWS=${options.maxRows})` }]);

/** The rows of a file, streamed in batches of raw lines (a CSV header and blank lines dropped). */
export async function* fileRows(path: string, format: BatchFormat, options: RowBatchOptions): AsyncGenerator<string[]> {
  const batchSize = options.batchSize ?? 5000;
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8', highWaterMark: 256 * 1024 }), crlfDelay: Infinity });
  let batch: string[] = [];
  let count = 0;
  let first = true;
  try {
    for await (const raw of lines) {
      const line = raw.trim();
      if (line === '') continue;
      if (first) {
        first = false;
        if (format === 'CSV' && isCsvHeader(line)) continue;
      }
      if (++count > options.maxRows) throw tooMany(options);
      batch.push(line);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    lines.close();
  }
}

/** Rows sent inline, as JSON Lines rows. */
export async function* inlineRows(rows: ReadonlyArray<readonly number[]>, options: RowBatchOptions): AsyncGenerator<string[]> {
  if (rows.length > options.maxRows) throw tooMany(options);
  const batchSize = options.batchSize ?? 5000;
  for (let start = 0; start < rows.length; start += batchSize) yield rows.slice(start, start + batchSize).map((row) => JSON.stringify(row));
}
