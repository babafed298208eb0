/**
 * Batch jobs: a 100,000-row iris CSV through a fresh gateway (started as `npm start` runs it,
 * default configuration: SQLite `synchronous=FULL`, one job at a time, 1,000-row chunks).
 *
 * - Throughput: the file is uploaded with the GraphQL multipart request (`submitBatchJob`);
 *   measured: upload + submit until the QUEUED answer, then until `batchJob` (polled every
 *   50 ms) says SUCCEEDED. rows/s end to end = rows / (finishedAt − the moment the upload
 *   started); worker rows/s = rows / (finishedAt − startedAt), both from the server's stamps
 *   (millisecond resolution). Then the SQLite file is read on a separate connection: every
 *   BatchRow of the job must have a prediction (that exists) or an error code.
 * - Online priority: iris `predict` (the load steps' body) at 16 connections on the idle
 *   gateway, then again while a 100,000-row job runs (the load starts once the job is
 *   RUNNING; a second job waits QUEUED so one follows at once, and a new spare is submitted
 *   whenever the spare starts, so a job runs for the whole window). Reported: both runs,
 *   the rows the jobs committed during the window and the share of the window a job ran.
 * - The command-line batch (`src/cli/main.ts batch`), when that file exists: rows/s from the
 *   wall time (process start included) and from its own JSON summary line (`rowsPerSecond`).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { round, runLoad, runStep, type LoadRun } from './load.ts';
import { startServer, stopServer } from './processes.ts';
import { PREDICT_BODY } from './read.ts';
import type { RawOnnxFigure } from './raw-onnx.ts';

export const BATCH_ROWS = 100_000;
export const ONLINE_CONNECTIONS = 16;
const POLL_MS = 50;
/** A job must reach SUCCEEDED within this; far beyond any plausible run. */
const JOB_TIMEOUT_MS = 10 * 60_000;

export interface BatchThroughput {
  rows: number;
  csvBytes: number;
  /** Upload start → the QUEUED answer (the rows are parsed and inserted by then). */
  uploadSubmitMs: number;
  /** The QUEUED answer → the first poll that saw SUCCEEDED. */
  submitToSucceededMs: number;
  /** startedAt (the worker's pick-up, server stamp) − upload start: the upload, parse and insert of the rows. */
  startedAfterMs: number;
  /** finishedAt − startedAt (server stamps, ms resolution). */
  workerMs: number;
  /** finishedAt − upload start. */
  endToEndMs: number;
  endToEndRowsPerS: number;
  workerRowsPerS: number;
  status: string;
  processed: number;
  failed: number;
  /** Read from the SQLite file on a separate connection once SUCCEEDED was seen. */
  check: { batchRows: number; done: number; withPrediction: number; predictionRowsFound: number; errors: number; minIndex: number; maxIndex: number };
  /** check.batchRows = done = predictionRowsFound = rows, and failed = 0. */
  everyRowCommitted: boolean;
}

export interface OnlineUnderBatch {
  connections: number;
  durationS: number;
  idle: LoadRun;
  duringJob: LoadRun;
  /** The idle run again once the jobs are cancelled: how much the machine itself moved meanwhile. */
  idleAfter: LoadRun;
  /** Rows the jobs committed between the start and the end of the loaded window (chunk granularity). */
  jobRowsInWindow: number;
  jobRowsPerSInWindow: number;
  /** Jobs that ran at some point of the window. */
  jobsInWindow: number;
  /** Share of the window during which a job was RUNNING (server stamps), 0..1. */
  jobCoverage: number;
}

export interface CliFigure {
  available: boolean;
  command: string;
  exit?: string;
  wallS?: number;
  rowsPerSWall?: number;
  /** `rowsPerSecond` of the last JSON line on its stdout holding one; null when there is none. */
  rowsPerSReported?: number | null;
  /** Lines of the output file after its header. */
  outputRows?: number;
  stderrTail?: string;
}

export interface BatchBenchResult {
  availableParallelism: number;
  /** Environment given to the gateway beyond port, host, log level and database (empty: the defaults). */
  gatewayEnv: Record<string, string>;
  /** os.loadavg() 1-minute figure when the section started and ended: other work on the machine shows here. */
  loadAverage: { start: number; end: number };
  rows: number;
  throughput: BatchThroughput | null;
  online: OnlineUnderBatch | null;
  cli: CliFigure | null;
  /** Parts that crashed (the others still ran). */
  crashes: string[];
}

interface JobState {
  id: string;
  status: string;
  total: number;
  processed: number;
  failed: number;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

const JOB_FIELDS = 'id status total processed failed startedAt finishedAt error';
const SUBMIT = `mutation ($input: BatchJobInput!) { submitBatchJob(input: $input) { ${JOB_FIELDS} } }`;
const JOB = `query ($id: ID!) { batchJob(id: $id) { ${JOB_FIELDS} } }`;
const CANCEL = `mutation ($id: ID!) { cancelBatchJob(id: $id) { ${JOB_FIELDS} } }`;

const log = (message: string) => console.error(`bench: ${message}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a seeded generator, so every run scores the same file. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `rows` iris rows: the 150 of datasets/iris.csv in turn, each value moved by up to ±0.05 cm
 * (seeded) and kept inside the manifest's feature range; a header of the feature names.
 */
export function irisCsv(repoRoot: string, rows: number): string {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'models/iris/model.json'), 'utf8')) as { features: Array<{ name: string; min: number; max: number }> };
  // The first line of the sklearn-style file is a header of counts and class names.
  const iris = readFileSync(join(repoRoot, 'datasets/iris.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(',').slice(0, 4).map(Number));
  const random = seeded(9);
  const lines = [manifest.features.map((f) => f.name).join(',')];
  for (let i = 0; i < rows; i++) {
    const base = iris[i % iris.length]!;
    lines.push(
      base
        .map((value, k) => {
          const { min, max } = manifest.features[k]!;
          const jittered = Math.min(max, Math.max(min, value + (random() - 0.5) * 0.1));
          return jittered.toFixed(2);
        })
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

async function gql<T>(url: string, query: string, variables: Record<string, unknown>): Promise<T> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  const body = JSON.parse(text) as { data?: T; errors?: unknown[] };
  if (res.status !== 200 || body.errors || !body.data) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  return body.data;
}

const jobOf = async (url: string, id: string) => (await gql<{ batchJob: JobState | null }>(url, JOB, { id })).batchJob!;

/** Submits the file as a GraphQL multipart request; resolves with the QUEUED job. */
async function upload(url: string, csv: string): Promise<JobState> {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: SUBMIT, variables: { input: { model: 'iris', file: null } } }));
  form.set('map', JSON.stringify({ 0: ['variables.input.file'] }));
  form.set('0', new Blob([csv], { type: 'text/csv' }), 'rows.csv');
  const res = await fetch(`${url}/graphql`, { method: 'POST', body: form, headers: { 'x-graphql-yoga-csrf': '1' } });
  const text = await res.text();
  const body = JSON.parse(text) as { data?: { submitBatchJob: JobState }; errors?: unknown[] };
  if (res.status !== 200 || body.errors || !body.data) throw new Error(`submitBatchJob: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return body.data.submitBatchJob;
}

async function waitFor(url: string, id: string, statuses: string[], timeoutMs = JOB_TIMEOUT_MS): Promise<JobState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await jobOf(url, id);
    if (statuses.includes(job.status)) return job;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) throw new Error(`job ${id} ended ${job.status} (${job.error ?? 'no error'}), expected ${statuses.join('/')}`);
    if (Date.now() > deadline) throw new Error(`job ${id} is ${job.status} after ${timeoutMs} ms, expected ${statuses.join('/')}`);
    await sleep(POLL_MS);
  }
}

function checkCommitted(dbFile: string, jobId: string): BatchThroughput['check'] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const row = db
      .prepare(
        `SELECT count(*) AS batchRows,
                coalesce(sum("predictionId" IS NOT NULL OR "errorCode" IS NOT NULL), 0) AS done,
                coalesce(sum("predictionId" IS NOT NULL), 0) AS withPrediction,
                coalesce(sum("errorCode" IS NOT NULL), 0) AS errors,
                coalesce(min("index"), -1) AS minIndex, coalesce(max("index"), -1) AS maxIndex
         FROM "BatchRow" WHERE "jobId" = ?`,
      )
      .get(jobId) as Omit<BatchThroughput['check'], 'predictionRowsFound'>;
    const predictionRowsFound = db.prepare(`SELECT count(*) FROM "BatchRow" r JOIN "Prediction" p ON p."id" = r."predictionId" WHERE r."jobId" = ?`).pluck().get(jobId) as number;
    return { ...row, predictionRowsFound };
  } finally {
    db.close();
  }
}

async function measureThroughput(url: string, dbFile: string, csv: string, rows: number): Promise<BatchThroughput> {
  const wallStart = Date.now();
  const t0 = performance.now();
  const queued = await upload(url, csv);
  const t1 = performance.now();
  if (queued.status !== 'QUEUED' && queued.status !== 'RUNNING') throw new Error(`submitBatchJob answered ${queued.status}`);
  if (queued.total !== rows) throw new Error(`submitBatchJob counted ${queued.total} rows, the file has ${rows}`);
  log(`batch: upload + submit ${Math.round(t1 - t0)} ms (QUEUED, ${queued.total} rows)`);
  const done = await waitFor(url, queued.id, ['SUCCEEDED']);
  const t2 = performance.now();
  const startedAt = Date.parse(done.startedAt!);
  const finishedAt = Date.parse(done.finishedAt!);
  const check = checkCommitted(dbFile, queued.id);
  const endToEndMs = finishedAt - wallStart;
  const workerMs = finishedAt - startedAt;
  return {
    rows,
    csvBytes: Buffer.byteLength(csv),
    uploadSubmitMs: round(t1 - t0, 1),
    submitToSucceededMs: round(t2 - t1, 1),
    startedAfterMs: startedAt - wallStart,
    workerMs,
    endToEndMs,
    endToEndRowsPerS: Math.round(rows / (endToEndMs / 1000)),
    workerRowsPerS: Math.round(rows / (workerMs / 1000)),
    status: done.status,
    processed: done.processed,
    failed: done.failed,
    check,
    everyRowCommitted: done.failed === 0 && check.batchRows === rows && check.done === rows && check.predictionRowsFound === rows && check.minIndex === 0 && check.maxIndex === rows - 1,
  };
}

/** Idle load, then the same load while jobs run back to back, then idle again once what is left is cancelled. */
async function measureOnline(url: string, csv: string, durationS: number, warmupS: number): Promise<OnlineUnderBatch> {
  const target = { url: `${url}/graphql`, body: PREDICT_BODY };
  const idle = await runStep(target, ONLINE_CONNECTIONS, durationS, warmupS);
  log(`batch: predict @${ONLINE_CONNECTIONS} idle: ${idle.measured.rps} rps, p50 ${idle.measured.p50Ms} ms, p99 ${idle.measured.p99Ms} ms`);

  const jobs: string[] = [];
  const first = await upload(url, csv);
  jobs.push(first.id);
  await waitFor(url, first.id, ['RUNNING']);
  // A spare waits QUEUED so that the worker takes it the moment the running one ends.
  let spare = (await upload(url, csv)).id;
  jobs.push(spare);

  const before = new Map<string, number>();
  for (const id of jobs) before.set(id, (await jobOf(url, id)).processed);
  const windowStart = Date.now();
  let loading = true;
  const load = runLoad(target, ONLINE_CONNECTIONS, durationS).finally(() => (loading = false));
  const keeper = (async () => {
    while (loading) {
      await sleep(POLL_MS);
      if (!loading) break;
      const job = await jobOf(url, spare);
      if (job.status !== 'QUEUED' && loading) {
        spare = (await upload(url, csv)).id;
        jobs.push(spare);
      }
    }
  })();
  const duringJob = await load;
  const windowEnd = Date.now();
  await keeper;
  const states = await Promise.all(jobs.map((id) => jobOf(url, id)));
  log(`batch: predict @${ONLINE_CONNECTIONS} during a job: ${duringJob.rps} rps, p50 ${duringJob.p50Ms} ms, p99 ${duringJob.p99Ms} ms`);
  await Promise.all(states.filter((j) => j.status === 'QUEUED' || j.status === 'RUNNING').map((j) => gql(url, CANCEL, { id: j.id })));
  // A cancelled job stops after its chunk in flight.
  for (const job of states) await waitFor(url, job.id, ['SUCCEEDED', 'CANCELLED']);
  const idleAfter = await runLoad(target, ONLINE_CONNECTIONS, durationS);
  log(`batch: predict @${ONLINE_CONNECTIONS} idle again: ${idleAfter.rps} rps, p50 ${idleAfter.p50Ms} ms, p99 ${idleAfter.p99Ms} ms`);

  let rowsInWindow = 0;
  let coveredMs = 0;
  let jobsInWindow = 0;
  for (const job of states) {
    // `processed` now may include a chunk committed after the window: at most one chunk of error.
    rowsInWindow += job.processed - (before.get(job.id) ?? 0);
    if (!job.startedAt) continue;
    const from = Math.max(windowStart, Date.parse(job.startedAt));
    const to = Math.min(windowEnd, job.finishedAt ? Date.parse(job.finishedAt) : windowEnd);
    if (to > from) {
      coveredMs += to - from;
      jobsInWindow++;
    }
  }
  const windowS = (windowEnd - windowStart) / 1000;
  log(`batch: job rows committed in the window: ${rowsInWindow}`);
  return {
    connections: ONLINE_CONNECTIONS,
    durationS,
    idle: idle.measured,
    duringJob,
    idleAfter,
    jobRowsInWindow: rowsInWindow,
    jobRowsPerSInWindow: Math.round(rowsInWindow / windowS),
    jobsInWindow,
    jobCoverage: round(Math.min(1, coveredMs / (windowEnd - windowStart)), 2),
  };
}

/** The CLI of issue 9, if this checkout has it. */
async function measureCli(repoRoot: string, dir: string, csvFile: string, rows: number): Promise<CliFigure> {
  const output = join(dir, 'out.csv');
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'batch', '--model', 'iris', '--input', csvFile, '--output', output];
  const command = `node ${args.join(' ')}`;
  if (!existsSync(join(repoRoot, 'src/cli/main.ts'))) return { available: false, command };
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    // Its own database, in case it records history.
    env: { ...process.env, DATABASE_URL: `file:${join(dir, 'cli.db')}`, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += String(chunk)));
  child.stderr.on('data', (chunk) => (stderr += String(chunk)));
  const timer = setTimeout(() => child.kill('SIGKILL'), JOB_TIMEOUT_MS);
  const exit = await new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)));
  clearTimeout(timer);
  const wallS = (performance.now() - t0) / 1000;
  let reported: number | null = null;
  for (const line of stdout.split('\n')) {
    try {
      const value = JSON.parse(line) as { rowsPerSecond?: unknown };
      if (value && typeof value.rowsPerSecond === 'number') reported = value.rowsPerSecond;
    } catch {
      // not the summary line
    }
  }
  const outputRows = existsSync(output) ? Math.max(0, readFileSync(output, 'utf8').trim().split('\n').length - 1) : 0;
  return {
    available: true,
    command,
    exit,
    wallS: round(wallS, 2),
    rowsPerSWall: Math.round(rows / wallS),
    rowsPerSReported: reported === null ? null : Math.round(reported),
    outputRows,
    stderrTail: stderr.trim().slice(-400) || undefined,
  };
}

/**
 * The whole section. `script`/`nodeArgs`: the gateway as `npm start` runs it. A part that
 * crashes is listed in `crashes`; the parts after it still run.
 */
export async function runBatchBench(opts: {
  repoRoot: string;
  script: string;
  nodeArgs: string[];
  durationS: number;
  warmupS: number;
  rows?: number;
  /** Extra environment of the gateway (experiments such as BATCH_CHUNK_ROWS); the bench itself passes none. */
  env?: Record<string, string>;
}): Promise<BatchBenchResult> {
  const rows = opts.rows ?? BATCH_ROWS;
  const result: BatchBenchResult = { availableParallelism: os.availableParallelism(), gatewayEnv: { ...opts.env }, loadAverage: { start: round(os.loadavg()[0]!, 2), end: 0 }, rows, throughput: null, online: null, cli: null, crashes: [] };
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-batch-'));
  const part = async (name: string, body: () => Promise<void>) => {
    try {
      await body();
    } catch (error) {
      result.crashes.push(`${name}: ${(error as Error).message}`);
      log(`batch: ${name} crashed: ${(error as Error).stack ?? String(error)}`);
    }
  };
  try {
    const csvFile = join(dir, 'rows.csv');
    const csv = irisCsv(opts.repoRoot, rows);
    writeFileSync(csvFile, csv);
    log(`batch: ${rows} rows, ${Math.round(Buffer.byteLength(csv) / 1024)} KiB of CSV`);
    const dbFile = join(dir, 'bench.db');
    await part('gateway', async () => {
      const server = await startServer({
        name: 'gateway (batch jobs)',
        script: opts.script,
        cwd: opts.repoRoot,
        env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: `file:${dbFile}`, ...opts.env },
        readyPath: '/readyz',
        nodeArgs: opts.nodeArgs,
      });
      try {
        await part('throughput', async () => {
          result.throughput = await measureThroughput(server.url, dbFile, csv, rows);
          const t = result.throughput;
          log(`batch: ${t.endToEndRowsPerS} rows/s end to end, ${t.workerRowsPerS} rows/s in the worker; every row committed: ${t.everyRowCommitted}`);
        });
        await part('online priority', async () => {
          result.online = await measureOnline(server.url, csv, opts.durationS, opts.warmupS);
        });
      } finally {
        const status = await stopServer(server);
        if (status.killed || status.code !== 0) result.crashes.push(`gateway (batch jobs) exit: ${status.signal ?? status.code}${status.killed ? ' (killed after the SIGTERM timeout)' : ''}`);
      }
    });
    await part('CLI', async () => {
      result.cli = await measureCli(opts.repoRoot, dir, csvFile, rows);
      const c = result.cli;
      log(c.available ? `batch: CLI ${c.exit}, ${c.rowsPerSWall} rows/s (wall), ${c.rowsPerSReported ?? '–'} rows/s (its summary)` : 'batch: CLI not available (no src/cli/main.ts)');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  result.loadAverage.end = round(os.loadavg()[0]!, 2);
  return result;
}

export interface BatchTarget {
  name: string;
  pass: boolean | null;
  detail: string;
}

export const BATCH_ROWS_PER_S_TARGET = 20_000;

export function batchTargets(b: BatchBenchResult | null): BatchTarget[] {
  const t = b?.throughput;
  const o = b?.online;
  const cores = b ? ` on ${b.availableParallelism} cores` : '';
  return [
    t
      ? { name: `batch job ≥ ${BATCH_ROWS_PER_S_TARGET.toLocaleString('en-US')} rows/s end to end (upload start → finishedAt)`, pass: t.endToEndRowsPerS >= BATCH_ROWS_PER_S_TARGET, detail: `${t.endToEndRowsPerS} rows/s end to end, ${t.workerRowsPerS} in the worker${cores}` }
      : { name: `batch job ≥ ${BATCH_ROWS_PER_S_TARGET.toLocaleString('en-US')} rows/s end to end (upload start → finishedAt)`, pass: null, detail: 'n/a: not measured' },
    t
      ? { name: 'batch job: every row committed (a prediction or an error code), failed = 0', pass: t.everyRowCommitted, detail: `${t.check.done}/${t.rows} done, ${t.check.predictionRowsFound} with their Prediction row, failed ${t.failed}` }
      : { name: 'batch job: every row committed (a prediction or an error code), failed = 0', pass: null, detail: 'n/a: not measured' },
    o
      ? { name: `predict p99 during a batch job < 2 × idle p99 at ${ONLINE_CONNECTIONS} connections`, pass: o.duringJob.p99Ms < 2 * o.idle.p99Ms, detail: `${o.duringJob.p99Ms} ms vs ${o.idle.p99Ms} ms idle (${(o.duringJob.p99Ms / o.idle.p99Ms).toFixed(2)}×)` }
      : { name: `predict p99 during a batch job < 2 × idle p99 at ${ONLINE_CONNECTIONS} connections`, pass: null, detail: 'n/a: not measured' },
  ];
}

const n = (value: number) => value.toLocaleString('en-US');
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** The report's "Batch jobs" section; `rawOnnx` gives the in-process limit rows of the same table. */
export function renderBatch(b: BatchBenchResult, rawOnnx: RawOnnxFigure[]): string[] {
  const out: string[] = [];
  const overrides = Object.entries(b.gatewayEnv);
  const config =
    overrides.length === 0
      ? 'default configuration (BATCH_CHUNK_ROWS 1,000, BATCH_CONCURRENCY 1, SQLITE_SYNCHRONOUS FULL)'
      : `default configuration except ${overrides.map(([k, v]) => `${k}=${v}`).join(', ')}`;
  out.push(
    `- os.availableParallelism(): ${b.availableParallelism}; the bench's HTTP client and the gateway share these cores. Load average (1 min) when the section started / ended: ${b.loadAverage.start} / ${b.loadAverage.end} (this section's own work included at the end).`,
    `- Job: ${n(b.rows)} iris rows as CSV (the 150 rows of datasets/iris.csv in turn, each value moved by up to ±0.05 cm within the manifest's ranges, seeded), uploaded with the GraphQL multipart request to a fresh gateway started as \`npm start\` runs it, ${config}.`,
    '',
  );
  const t = b.throughput;
  const rows: string[][] = [];
  if (t) {
    rows.push(
      ['batch job, end to end (upload start → `finishedAt`)', n(t.rows), s(t.endToEndMs), n(t.endToEndRowsPerS), `upload + submit until QUEUED ${s(t.uploadSubmitMs)} (${n(Math.round(t.csvBytes / 1024))} KiB); QUEUED answer → SUCCEEDED seen ${s(t.submitToSucceededMs)} (polled every ${POLL_MS} ms)`],
      ['batch job, worker (`startedAt` → `finishedAt`)', n(t.rows), s(t.workerMs), n(t.workerRowsPerS), `chunk by chunk: read, score on the bulk lane, commit; started ${s(t.startedAfterMs)} after the upload began`],
    );
  } else rows.push(['batch job', n(b.rows), '–', '–', 'not measured (see notes)']);
  const c = b.cli;
  if (!c) rows.push(['CLI `batch`', n(b.rows), '–', '–', 'not measured (see notes)']);
  else if (!c.available) rows.push(['CLI `batch`', n(b.rows), '–', 'not available', 'no `src/cli/main.ts` in this checkout']);
  else {
    rows.push(
      ['CLI `batch`, wall time (process start included)', n(b.rows), `${c.wallS} s`, n(c.rowsPerSWall ?? 0), `\`${c.command.replace(/\S*\/rows\.csv/, 'rows.csv').replace(/\S*\/out\.csv/, 'out.csv')}\`: exit ${c.exit}, ${n(c.outputRows ?? 0)} rows written`],
      ['CLI `batch`, its own summary (`rowsPerSecond`)', n(b.rows), '–', c.rowsPerSReported === null || c.rowsPerSReported === undefined ? 'no summary line' : n(c.rowsPerSReported), ''],
    );
  }
  for (const f of rawOnnx) rows.push([`raw ONNX Runtime, batch ${f.batch}, one thread (in-process limit, no parsing or storage)`, n(f.runs * f.batch), `${f.seconds} s`, n(f.rowsPerS), `${f.usPerRun} µs per run`]);
  if (rawOnnx.length === 0) rows.push(['raw ONNX Runtime', '–', '–', '–', 'not run']);
  out.push('| path | rows | time | rows/s | detail |', '| --- | --- | --- | --- | --- |', ...rows.map((r) => `| ${r.join(' | ')} |`), '');
  if (t) {
    out.push(
      `Committed (read from the SQLite file on its own connection once SUCCEEDED was seen): ${n(t.check.batchRows)} BatchRow rows (index ${t.check.minIndex}..${t.check.maxIndex}), ${n(t.check.done)} with a prediction or an error code, ${n(t.check.predictionRowsFound)} whose Prediction row exists, ${t.check.errors} errors; job ${t.status}, processed ${n(t.processed)}, failed ${t.failed}: **${t.everyRowCommitted ? 'every row committed' : 'NOT every row committed'}**.`,
      '',
    );
  }
  const o = b.online;
  const errors = (run: LoadRun) => run.non2xx + run.errors + run.graphqlErrors;
  if (o) {
    out.push(
      `Online priority: iris \`predict\` (the load steps' body) at ${o.connections} connections for ${o.durationS} s, on the idle gateway (after a warm-up at the same load), then while ${n(b.rows)}-row jobs run (the load starts once the job is RUNNING; a queued spare follows at once if it ends), then idle again once the jobs are cancelled (a check on the machine's own drift; the target compares with the first idle run).`,
      '',
      '| gateway | rps | p50 ms | p99 ms | max ms | errors | job rows committed in the window |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      `| idle | ${o.idle.rps} | ${o.idle.p50Ms} | ${o.idle.p99Ms} | ${o.idle.maxMs} | ${errors(o.idle)} | – |`,
      `| a batch job running | ${o.duringJob.rps} | ${o.duringJob.p50Ms} | ${o.duringJob.p99Ms} | ${o.duringJob.maxMs} | ${errors(o.duringJob)} | ${n(o.jobRowsInWindow)} (${n(o.jobRowsPerSInWindow)} rows/s; ${o.jobsInWindow} job(s), running ${Math.round(o.jobCoverage * 100)}% of the window) |`,
      `| idle again (jobs cancelled) | ${o.idleAfter.rps} | ${o.idleAfter.p50Ms} | ${o.idleAfter.p99Ms} | ${o.idleAfter.maxMs} | ${errors(o.idleAfter)} | – |`,
      '',
      `p99 during the job / idle: ${(o.duringJob.p99Ms / o.idle.p99Ms).toFixed(2)}× (target < 2×); rps ${(o.duringJob.rps / o.idle.rps).toFixed(2)}×.`,
      '',
    );
  } else out.push('Online priority: not measured (see notes).', '');
  return out;
}
