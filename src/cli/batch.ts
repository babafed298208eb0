import { stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../config.ts';
import { ModelNotFoundError } from '../errors.ts';
import { interpretationOf } from '../inference/interpretation.ts';
import { ModelRepository } from '../inference/repository.ts';
import type { ServedVersion } from '../inference/types.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import type { BatchFormat } from '../serving/batch-job-store.ts';
import { csvHeader, csvLine, jsonLine, type ResultFormat, type ResultRow } from '../serving/batch-results-format.ts';
import { fileRows, firstLineOf, formatOfUpload } from '../serving/batch-rows.ts';
import { scoreRows } from '../serving/batch-scoring.ts';
import { UsageError, type Command, type OptionValues } from './command.ts';
import { showProgress, type Progress } from './progress.ts';
import { openResultFile, type ResultFile } from './result-file.ts';

/**
 * `onnx-gateway batch`: scores every row of a CSV or JSON Lines file with one model version
 * and writes one result line per row, for schedulers (cron, Airflow). Rows are read,
 * checked and scored by the batch jobs' own code (`scoreRows`, on the version's bulk lane),
 * and the results file has the lines of the server's download route; nothing is stored in
 * the prediction history, so `prediction_id` is empty. Only the named model is loaded.
 *
 * stdout carries exactly one line, the JSON summary (`BatchSummary`); logs (pino) and
 * progress go to stderr. The results are written beside the output and renamed into place
 * when complete (result-file.ts): a failed or interrupted run leaves no partial file.
 *
 * Exit codes, for a scheduler to act on:
 *   0    every row scored
 *   3    finished, but some rows failed: the output has them (status `error`, code, message)
 *   1    the job failed (model missing or not loadable, input unreadable, output not
 *        writable, any fatal error); the summary says why, and so does a line on stderr
 *   2    usage error (unknown, missing or bad option); nothing ran, no summary
 *   130  SIGINT, 143 SIGTERM: stopped after the chunk in flight; status FAILED, error `interrupted`
 */

export interface BatchSummary {
  status: 'SUCCEEDED' | 'FAILED';
  model: string;
  /** The version scored; the one asked for (or null) when the job failed before resolving it. */
  version: number | null;
  /** Absolute paths. */
  input: string;
  output: string;
  /** Rows in the input; null when it could not be read. */
  total: number | null;
  /** Rows done, failed ones included. */
  processed: number;
  failed: number;
  /** Why the job FAILED (`interrupted` after a signal); null otherwise. */
  error: string | null;
  durationMs: number;
  rowsPerSecond: number;
}

interface BatchArgs {
  model: string;
  version: number | undefined;
  input: string;
  output: string;
  /** Undefined: as the server decides for an upload (extension, else the first line). */
  format: BatchFormat | undefined;
  outputFormat: ResultFormat;
  /** Undefined: BATCH_CHUNK_ROWS. */
  chunkRows: number | undefined;
}

const USAGE = `Usage: onnx-gateway batch --model NAME --input PATH --output PATH [options]

Scores every row of a CSV or JSON Lines file with one model of MODEL_REPOSITORY and
writes one result line per row (the lines of the server's results download).

Options:
  --model NAME                 the model (required)
  --version N                  its version (default: the model's default version)
  --input PATH                 the rows (required)
  --output PATH                the results, written whole or not at all (required)
  --format csv|jsonl           input format (default: by extension, else by the first line)
  --output-format csv|jsonl    results format (default: by extension .csv, .jsonl, .ndjson)
  --chunk-rows N               rows scored together (default: BATCH_CHUNK_ROWS)
  -h, --help                   this text

stdout is one JSON line, the summary; logs and progress go to stderr.
Exit codes: 0 all rows ok, 3 some rows failed, 1 the job failed, 2 usage error,
130/143 interrupted by SIGINT/SIGTERM.
`;

/** Whole rows a chunk may hold at most (the input is streamed; it has no row limit). */
const NO_ROW_LIMIT = Number.MAX_SAFE_INTEGER;

const EXIT = { ok: 0, failed: 1, someRowsFailed: 3, SIGINT: 130, SIGTERM: 143 } as const;

export const batchCommand: Command = {
  name: 'batch',
  summary: 'score a CSV or JSON Lines file with one model into a results file',
  usage: USAGE,
  options: {
    model: { type: 'string' },
    version: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
    format: { type: 'string' },
    'output-format': { type: 'string' },
    'chunk-rows': { type: 'string' },
  },
  run: (values) => runBatch(batchArgsOf(values)),
};

function stringOption(values: OptionValues, name: string, required: true): string;
function stringOption(values: OptionValues, name: string, required?: false): string | undefined;
function stringOption(values: OptionValues, name: string, required = false): string | undefined {
  const value = values[name];
  if (value === undefined) {
    if (required) throw new UsageError(`--${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} expects a value`);
  return value;
}

function wholeNumberOption(values: OptionValues, name: string): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`Expected \`--${name}\` to be a whole number >= 1, got \`${text}\``);
  return Number(text);
}

function formatOption(values: OptionValues, name: string): ResultFormat | undefined {
  const text = stringOption(values, name);
  if (text === undefined || text === 'csv' || text === 'jsonl') return text;
  throw new UsageError(`Expected \`--${name}\` to be csv or jsonl, got \`${text}\``);
}

const RESULT_FORMAT_OF_EXTENSION: Readonly<Record<string, ResultFormat>> = { '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' };

function batchArgsOf(values: OptionValues): BatchArgs {
  const model = stringOption(values, 'model', true);
  const input = resolve(stringOption(values, 'input', true));
  const output = resolve(stringOption(values, 'output', true));
  if (output === input) throw new UsageError('--output must not be the input file');
  const outputFormat = formatOption(values, 'output-format') ?? RESULT_FORMAT_OF_EXTENSION[extname(output).toLowerCase()];
  if (!outputFormat) throw new UsageError(`cannot tell the results format of \`${output}\`: name it .csv, .jsonl or .ndjson, or pass --output-format`);
  const format = formatOption(values, 'format');
  return {
    model,
    version: wholeNumberOption(values, 'version'),
    input,
    output,
    format: format === undefined ? undefined : format === 'csv' ? 'CSV' : 'JSONL',
    outputFormat,
    chunkRows: wholeNumberOption(values, 'chunk-rows'),
  };
}

async function countRows(input: string, format: BatchFormat): Promise<number> {
  let total = 0;
  for await (const lines of fileRows(input, format, { maxRows: NO_ROW_LIMIT, batchSize: 10_000 })) total += lines.length;
  return total;
}

async function servedVersionOf(models: ModelRepository, name: string, version: number | undefined): Promise<ServedVersion> {
  const model = models.get(name);
  if (!model) throw new Error(`${new ModelNotFoundError(name).message} (${models.root})`);
  if (version !== undefined && !model.versions.some((v) => v.version === version)) throw new ModelNotFoundError(name, version);
  await models.load();
  return models.resolve(name, version);
}

async function runBatch(args: BatchArgs): Promise<number> {
  const started = performance.now();
  const summary: BatchSummary = {
    status: 'FAILED',
    model: args.model,
    version: args.version ?? null,
    input: args.input,
    output: args.output,
    total: null,
    processed: 0,
    failed: 0,
    error: null,
    durationMs: 0,
    rowsPerSecond: 0,
  };
  let interrupted: 'SIGINT' | 'SIGTERM' | undefined;
  /** The signal the run stopped for; one that comes once every row is done changes nothing. */
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined;
  let log: Logger | undefined;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    interrupted ??= signal;
    log?.warn({ signal }, 'interrupted: stopping after the chunk in flight');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let models: ModelRepository | undefined;
  let file: ResultFile | undefined;
  let progress: Progress | undefined;
  try {
    const config = loadConfig(process.env, '.env');
    log = createLogger(config.logLevel, 'stderr');
    const inputStat = await stat(args.input).catch((error: Error) => {
      throw new Error(`cannot read input: ${error.message}`);
    });
    if (!inputStat.isFile()) throw new Error(`cannot read input: \`${args.input}\` is not a file`);
    file = await openResultFile(args.output).catch((error: Error) => {
      throw new Error(`cannot write output: ${error.message}`);
    });
    const format = args.format ?? formatOfUpload({ filename: args.input, mimetype: '' }, await firstLineOf(args.input));
    models = new ModelRepository(config.modelRepository, log, { batching: config.batching, only: [args.model] });
    const [total, version] = await Promise.all([countRows(args.input, format), servedVersionOf(models, args.model, args.version)]);
    summary.total = total;
    summary.version = version.version;
    const interpretation = interpretationOf(version.manifest, version.outputs[0]?.name);
    const chunkRows = args.chunkRows ?? config.batch.chunkRows;
    log.info({ model: version.name, version: version.version, input: args.input, format, total, chunkRows }, 'batch started');

    progress = showProgress(process.stderr, total);
    if (args.outputFormat === 'csv') await file.write(csvHeader(interpretation));
    for await (const lines of fileRows(args.input, format, { maxRows: NO_ROW_LIMIT, batchSize: chunkRows })) {
      if (interrupted) {
        stoppedBy = interrupted;
        break;
      }
      const first = summary.processed;
      const scored = await scoreRows(version, lines.map((input, k) => ({ index: first + k, input })), format, interpretation);
      let text = '';
      for (const s of scored) {
        const row: ResultRow = { index: s.index, predictionId: null, prediction: s.prediction ?? null, error: s.error ?? null };
        text += args.outputFormat === 'csv' ? csvLine(row, interpretation) : jsonLine(row);
        if (s.error) summary.failed++;
      }
      await file.write(text);
      summary.processed += scored.length;
      progress.update(summary.processed, summary.failed);
    }
    if (stoppedBy) {
      summary.error = 'interrupted';
    } else {
      await file.commit();
      summary.status = 'SUCCEEDED';
    }
  } catch (error) {
    summary.error = error instanceof Error ? error.message : String(error);
  } finally {
    progress?.stop();
    await file?.discard();
    await models?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  summary.durationMs = Math.round(performance.now() - started);
  summary.rowsPerSecond = summary.durationMs > 0 ? Math.round((summary.processed * 10_000) / summary.durationMs) / 10 : 0;
  if (summary.status === 'FAILED') process.stderr.write(`batch failed: ${summary.error}${stoppedBy ? ` (${stoppedBy})` : ''}\n`);
  log?.info({ ...summary }, 'batch finished');
  process.stdout.write(JSON.stringify(summary) + '\n');
  if (stoppedBy) return EXIT[stoppedBy];
  if (summary.status === 'FAILED') return EXIT.failed;
  return summary.failed > 0 ? EXIT.someRowsFailed : EXIT.ok;
}
