import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interpretationOf } from '../src/inference/interpretation.ts';
import { ModelRepository } from '../src/inference/repository.ts';
import { csvHeader } from '../src/serving/batch-results-format.ts';
import { scoreRows } from '../src/serving/batch-scoring.ts';

/** The 150 iris rows (features only) from the repository's data set (its first line is a count line). */
const IRIS: number[][] = readFileSync('datasets/iris.csv', 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').slice(0, 4).map(Number));

const IRIS_LINES = IRIS.map((row) => row.join(',') + '\n').join('');
const IRIS_CSV = 'sepal_length,sepal_width,petal_length,petal_width\n' + IRIS_LINES;

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `src/cli/main.ts` in a child process, as `npm run gateway --` runs it; `onStderrLine` sees stderr as it comes. */
function runCli(args: string[], options: { env?: Record<string, string>; onStderrLine?: (line: string, kill: (signal: NodeJS.Signals) => void) => void } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, MODEL_REPOSITORY: 'models', LOG_LEVEL: 'info', BATCH_CHUNK_ROWS: '1000', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr += line + '\n';
    options.onStderrLine?.(line, (signal) => child.kill(signal));
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** The one line of stdout, parsed; fails unless stdout is exactly one JSON line. */
function summaryOf(run: CliRun) {
  expect(run.stdout.endsWith('\n')).toBe(true);
  const lines = run.stdout.slice(0, -1).split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!);
}

/** Fields of one CSV line (quoted fields may hold commas and doubled quotes). */
function csvFields(line: string): string[] {
  const fields: string[] = [];
  for (const match of line.matchAll(/("(?:[^"]|"")*"|[^,]*)(,|$)/g)) {
    const raw = match[1]!;
    fields.push(raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw);
    if (match[2] === '') break;
  }
  return fields;
}

function csvRecords(text: string) {
  const [header, ...lines] = text.trimEnd().split('\n');
  const names = csvFields(header!);
  return { header: header!, rows: lines.map((line) => Object.fromEntries(csvFields(line).map((value, k) => [names[k]!, value]))) };
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'batch-cli-'));

describe('onnx-gateway batch', () => {
  /** What scoreRows gives in this process for every iris row: label and class probabilities. */
  let expected: Array<{ label: string | null; probabilities: number[] }>;
  let header: string;
  let models: ModelRepository;

  beforeAll(async () => {
    models = new ModelRepository('models', pino({ level: 'silent' }), { only: ['iris'] });
    await models.load();
    const version = models.resolve('iris');
    const interpretation = interpretationOf(version.manifest, version.outputs[0]?.name);
    header = csvHeader(interpretation);
    const scored = await scoreRows(version, IRIS.map((row, index) => ({ index, input: row.join(',') })), 'CSV', interpretation);
    expected = scored.map((s) => ({ label: s.prediction!.outcome?.label ?? null, probabilities: s.prediction!.outputs.find((o) => o.name === 'probabilities')!.data }));
  });
  afterAll(() => models.close());

  it('scores a CSV with a header into a CSV of one line per row, in order, with the labels scoreRows gives; exit 0', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_CSV);
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv')]);

    expect(run.code).toBe(0);
    const summary = summaryOf(run);
    expect(summary).toMatchObject({ status: 'SUCCEEDED', model: 'iris', version: 1, input: join(dir, 'rows.csv'), output: join(dir, 'results.csv'), total: 150, processed: 150, failed: 0, error: null });
    expect(summary.durationMs).toBeGreaterThan(0);
    expect(summary.rowsPerSecond).toBeGreaterThan(0);

    const text = readFileSync(join(dir, 'results.csv'), 'utf8');
    const { rows } = csvRecords(text);
    expect(text.startsWith(header)).toBe(true);
    expect(rows.map((r) => Number(r.index))).toEqual(IRIS.map((_, k) => k));
    expect(rows.every((r) => r.status === 'ok' && r.prediction_id === '' && r.error_code === '')).toBe(true);
    expect(rows.map((r) => r.label)).toEqual(expected.map((e) => e.label));
    expect(rows[0]!.label).toBe('setosa');
    expect(rows[149]!.label).toBe('virginica');
    rows.forEach((r, k) => {
      const probabilities = [Number(r.p_setosa), Number(r.p_versicolor), Number(r.p_virginica)];
      probabilities.forEach((p, c) => expect(p).toBeCloseTo(expected[k]!.probabilities[c]!, 6));
      expect(JSON.parse(r.outputs!).probabilities).toEqual(probabilities);
    });
  });

  it('scores JSON Lines (arrays and feature objects) into a .jsonl file; exit 0', async () => {
    const dir = tempDir();
    const input = IRIS.map((row, k) => JSON.stringify(k % 2 === 0 ? row : { features: row })).join('\n') + '\n';
    writeFileSync(join(dir, 'rows.jsonl'), input);
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.jsonl'), '--output', join(dir, 'results.jsonl'), '--chunk-rows', '64']);

    expect(run.code).toBe(0);
    expect(summaryOf(run)).toMatchObject({ status: 'SUCCEEDED', total: 150, processed: 150, failed: 0 });
    const lines = readFileSync(join(dir, 'results.jsonl'), 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((l) => l.index)).toEqual(IRIS.map((_, k) => k));
    expect(lines.map((l) => l.label)).toEqual(expected.map((e) => e.label));
    expect(lines[0]).toMatchObject({ index: 0, predictionId: null, label: 'setosa', value: null });
    expect(lines[0].scores.map((s: any) => s.label)[0]).toBe('setosa');
    expect(lines[149].label).toBe('virginica');
  });

  it('finishes with exit 3 when some rows fail: the output has them in place, with status error and their codes', async () => {
    const dir = tempDir();
    const bad = ['5.1,3.5,1.4', 'abc,3.5,1.4,0.2', '99,3.5,1.4,0.2'];
    writeFileSync(join(dir, 'rows.csv'), [IRIS[0]!.join(','), ...bad, IRIS[149]!.join(',')].join('\n') + '\n');
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv')]);

    expect(run.code).toBe(3);
    expect(summaryOf(run)).toMatchObject({ status: 'SUCCEEDED', total: 5, processed: 5, failed: 3, error: null });
    const { rows } = csvRecords(readFileSync(join(dir, 'results.csv'), 'utf8'));
    expect(rows.map((r) => [r.index, r.status, r.label, r.error_code])).toEqual([
      ['0', 'ok', 'setosa', ''],
      ['1', 'error', '', 'BAD_USER_INPUT'],
      ['2', 'error', '', 'BAD_USER_INPUT'],
      ['3', 'error', '', 'BAD_USER_INPUT'],
      ['4', 'ok', 'virginica', ''],
    ]);
    expect(rows[1]!.error_message).toMatch(/expected 4 values/);
    expect(rows[2]!.error_message).toMatch(/`abc` is not a number/);
    expect(rows[3]!.error_message).toMatch(/must be from 0 to 16, got 99/);
  });

  it('fails the job with exit 1 and a FAILED summary for an unknown model, a model that cannot load, or a missing input', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_CSV);
    const unknown = await runCli(['batch', '--model', 'nope', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv')]);
    expect(unknown.code).toBe(1);
    expect(summaryOf(unknown)).toMatchObject({ status: 'FAILED', model: 'nope', version: null, total: null, processed: 0, error: expect.stringMatching(/Model `nope` is not in the model repository/) });
    expect(unknown.stderr).toMatch(/^batch failed: Model `nope` is not in the model repository/m);

    const repo = tempDir();
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    writeFileSync(join(repo, 'iris', '1', 'model.onnx'), 'not an ONNX model');
    const broken = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv')], { env: { MODEL_REPOSITORY: repo } });
    expect(broken.code).toBe(1);
    expect(summaryOf(broken)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^Model `iris` version 1 is not ready \(FAILED: /) });

    const missing = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'missing.csv'), '--output', join(dir, 'results.csv')]);
    expect(missing.code).toBe(1);
    expect(summaryOf(missing)).toMatchObject({ status: 'FAILED', total: null, error: expect.stringMatching(/^cannot read input: ENOENT/) });

    expect(readdirSync(dir)).toEqual(['rows.csv']);
  });

  it('answers a usage error with exit 2, the usage on stderr and nothing on stdout', async () => {
    const dir = tempDir();
    const runs = await Promise.all([
      runCli(['batch', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv')]),
      runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv'), '--colour']),
      runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.txt')]),
      runCli(['frobnicate']),
      runCli([]),
    ]);
    for (const run of runs) {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^error: .+\n\nUsage: onnx-gateway /);
    }
    expect(runs[0].stderr).toMatch(/--model is required/);
    expect(runs[1].stderr).toMatch(/Unknown option '--colour'/);
    expect(runs[2].stderr).toMatch(/cannot tell the results format/);
    expect(runs[3].stderr).toMatch(/unknown command `frobnicate`/);

    const help = await runCli(['batch', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: onnx-gateway batch /);
  });

  it('keeps stdout to the one summary line: logs (only iris loaded) and one progress line per chunk go to stderr', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_CSV);
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv'), '--chunk-rows', '50']);

    expect(run.code).toBe(0);
    expect(summaryOf(run).processed).toBe(150);
    const stderr = run.stderr.trimEnd().split('\n');
    const progress = stderr.filter((line) => line.startsWith('progress: '));
    expect(progress).toEqual(['progress: 50/150 rows (33%) failed=0', 'progress: 100/150 rows (66%) failed=0', 'progress: 150/150 rows (100%) failed=0']);
    const logs = stderr.filter((line) => !line.startsWith('progress: ')).map((line) => JSON.parse(line));
    expect(logs.filter((l) => l.msg === 'model loaded').map((l) => l.model)).toEqual(['iris']);
    expect(logs.at(-1)).toMatchObject({ msg: 'batch finished', status: 'SUCCEEDED', processed: 150 });
  });

  it('with 20 chunks prints a progress line per tenth of the rows, not per chunk', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_CSV + IRIS_LINES);
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.jsonl'), '--chunk-rows', '15']);

    expect(run.code).toBe(0);
    expect(summaryOf(run).total).toBe(300);
    const progress = run.stderr.split('\n').filter((line) => line.startsWith('progress: '));
    expect(progress.map((line) => line.match(/\((\d+)%\)/)![1])).toEqual(['10', '20', '30', '40', '50', '60', '70', '80', '90', '100']);
  });

  it('leaves no temp file and an earlier output untouched when stopped by SIGTERM (143) or SIGINT (130)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_LINES.repeat(200));
    writeFileSync(join(dir, 'results.csv'), 'the previous run\n');
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      // The signal goes out once the first tenth is done: the run is in the middle of its chunks.
      const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.csv'), '--chunk-rows', '500'], {
        onStderrLine: (line, kill) => {
          if (line.startsWith('progress: 3000/')) kill(signal);
        },
      });
      expect(run.code).toBe(code);
      const summary = summaryOf(run);
      expect(summary).toMatchObject({ status: 'FAILED', error: 'interrupted', total: 30_000 });
      expect(summary.processed).toBeGreaterThanOrEqual(3000);
      expect(summary.processed).toBeLessThan(30_000);
      expect(readdirSync(dir).sort()).toEqual(['results.csv', 'rows.csv']);
      expect(readFileSync(join(dir, 'results.csv'), 'utf8')).toBe('the previous run\n');
    }
  });

  it('leaves only the input and the output in the output folder after a run', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'rows.csv'), IRIS_CSV);
    const run = await runCli(['batch', '--model', 'iris', '--input', join(dir, 'rows.csv'), '--output', join(dir, 'results.ndjson')]);
    expect(run.code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['results.ndjson', 'rows.csv']);
    expect(JSON.parse(readFileSync(join(dir, 'results.ndjson'), 'utf8').split('\n')[0]!)).toMatchObject({ index: 0, label: 'setosa' });
  });
});
