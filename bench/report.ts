/**
 * The bench's result: its shape (also the .json file), the targets it is judged against, and the
 * markdown rendering. Missing a target is reported, never thrown: the bench fails only on crashes.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadRun, LoadStep } from './load.ts';
import { renderAmplification, type AmplificationFigure } from './amplification.ts';
import { renderBatch, type BatchBenchResult } from './batch.ts';
import { renderKvCache, type KvCacheFigure } from './kv-cache.ts';
import { renderScaleOut, type ScaleOutResult } from './scale-out.ts';
import type { RawOnnxFigure } from './raw-onnx.ts';
import type { ReadLoadResult, StatementCount } from './read.ts';
import { renderMetrics, type MetricsBenchResult } from './metrics.ts';
import { renderShadow, type ShadowBenchResult } from './shadow.ts';

export type ServerKey = 'gatewayOn' | 'gatewayOff' | 'gatewayNormalSync' | 'ceiling' | 'peer';

export interface ServerRun {
  key: ServerKey;
  label: string;
  url: string;
  steps: LoadStep[];
  /** Successful predict responses over the whole run, warm-ups included. */
  okTotal: number;
  /** Requests sent without a response over the whole run (the server may have handled them). */
  unansweredTotal: number;
  /** Gateways only: rows in "Prediction" after shutdown, and whether they equal `okTotal`. */
  rows?: number;
  nothingLost?: boolean;
  /** RSS once ready, before any load (MB). */
  idleRssMb?: number;
  peakRssMb?: number;
  /** VmHWM just before the read benchmark, when one ran in this process (MB). */
  peakRssBeforeReadMb?: number;
  exit?: string;
  /** Log lines at warn level or above, and stderr, from the child process. */
  warnings: string[];
}

export interface BenchResult {
  date: string;
  machine: { availableParallelism: number; cpu: string; node: string; platform: string; totalMemMb: number };
  /** `only`: the sections run (`--only`); null: all. */
  settings: { durationS: number; warmupS: number; connections: number[]; peer: string | null; quick: boolean; only: string[] | null };
  servers: ServerRun[];
  rawOnnx: RawOnnxFigure[];
  /** Generation steps with and without the KV cache; null when the section did not run. */
  kvCache: KvCacheFigure[] | null;
  /** Memory per request, by request form. */
  amplification: AmplificationFigure[] | null;
  /** Batch jobs: throughput, online priority during a job, the CLI; null when the section did not run. */
  batch: BatchBenchResult | null;
  /** PostgreSQL group commit, replicas behind nginx, response cache, subscription fan-out (null parts did not run). */
  scaleOut: ScaleOutResult;
  /** Predict throughput with and without Prometheus metrics, and the log line's cost; null when the section did not run. */
  metrics: MetricsBenchResult | null;
  /** Caller latency and throughput at 1 connection with and without a shadow version; null when the section did not run. */
  shadow?: ShadowBenchResult | null;
  read: { load: ReadLoadResult | null; statements: StatementCount | null };
  targets: Target[];
  notes: string[];
  elapsedS: number;
}

export interface Target {
  name: string;
  /** null: could not be evaluated (no such step, no peer). */
  pass: boolean | null;
  detail: string;
}

/** non-2xx + connection errors (autocannon's count, timeouts included) + 2xx answers carrying GraphQL `errors`. */
export function errorCount(run: LoadRun): number {
  return run.non2xx + run.errors + run.graphqlErrors;
}

const stepAt = (server: ServerRun | undefined, connections: number) =>
  server?.steps.find((s) => s.measured.connections === connections)?.measured;

export function computeTargets(servers: ServerRun[]): Target[] {
  const by = (key: ServerKey) => servers.find((s) => s.key === key);
  const on = by('gatewayOn');
  const off = by('gatewayOff');
  const ceiling = by('ceiling');
  const peer = by('peer');
  const on64 = stepAt(on, 64);
  const targets: Target[] = [];
  const add = (name: string, pass: boolean | null, detail: string) => targets.push({ name, pass, detail });
  const missing = (what: string) => `n/a: ${what}`;

  const ceiling64 = stepAt(ceiling, 64);
  if (on64 && ceiling64) {
    add('gateway (batching on) rps ≥ 0.8 × ceiling at 64 connections', on64.rps >= 0.8 * ceiling64.rps,
      `${on64.rps} vs ${ceiling64.rps} (${ratio(on64.rps, ceiling64.rps)})`);
  } else add('gateway (batching on) rps ≥ 0.8 × ceiling at 64 connections', null, missing('no 64-connection step'));

  if (on64) {
    add('gateway (batching on) p99 < 100 ms at 64 connections', on64.p99Ms < 100, `p99 ${on64.p99Ms} ms`);
    const warm64 = on?.steps.find((s) => s.measured.connections === 64)?.warmup;
    const errors = errorCount(on64) + (warm64 ? errorCount(warm64) : 0);
    add('gateway (batching on) zero errors at 64 connections (warm-up included)', errors === 0, `${errors} errors`);
  } else {
    add('gateway (batching on) p99 < 100 ms at 64 connections', null, missing('no 64-connection step'));
    add('gateway (batching on) zero errors at 64 connections (warm-up included)', null, missing('no 64-connection step'));
  }

  if (on?.rows !== undefined) {
    add('gateway (batching on) rows in history == ok responses (whole run)', on.rows === on.okTotal, `${on.rows} rows, ${on.okTotal} ok`);
  } else add('gateway (batching on) rows in history == ok responses (whole run)', null, missing('rows not counted'));

  const peer64 = stepAt(peer, 64);
  if (!peer) add('gateway (batching on) ≥ 10 × peer rps at 64 connections', null, missing('no --peer given'));
  else if (on64 && peer64) {
    add('gateway (batching on) ≥ 10 × peer rps at 64 connections', on64.rps >= 10 * peer64.rps,
      `${on64.rps} vs ${peer64.rps} (${ratio(on64.rps, peer64.rps)})`);
  } else add('gateway (batching on) ≥ 10 × peer rps at 64 connections', null, missing('no 64-connection step'));

  const off64 = stepAt(off, 64);
  if (on64 && off64) {
    add('batching on: higher rps than off at 64 connections', on64.rps > off64.rps, `on ${on64.rps} vs off ${off64.rps} (${ratio(on64.rps, off64.rps)})`);
  } else add('batching on: higher rps than off at 64 connections', null, missing('no 64-connection step'));

  const on1 = stepAt(on, 1);
  const off1 = stepAt(off, 1);
  if (on1 && off1) {
    add('batching on: p50 at 1 connection ≤ 1.1 × off', on1.p50Ms <= 1.1 * off1.p50Ms, `on ${on1.p50Ms} ms vs off ${off1.p50Ms} ms (${ratio(on1.p50Ms, off1.p50Ms)})`);
  } else add('batching on: p50 at 1 connection ≤ 1.1 × off', null, missing('no 1-connection step'));

  const rss64 = [on, off].map((s) => ({ label: s?.label, peak: s?.steps.find((x) => x.measured.connections === 64)?.peakRssMb })).filter((s) => s.peak !== undefined);
  if (rss64.length > 0) {
    add('gateway peak RSS < 300 MB during the 64-connection step (each configuration)', rss64.every((s) => s.peak! < 300), rss64.map((s) => `${s.label}: ${s.peak} MB`).join(', '));
  } else add('gateway peak RSS < 300 MB during the 64-connection step (each configuration)', null, missing('not sampled'));
  return targets;
}

export function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
}

function table(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(r: BenchResult): string {
  const ceiling = r.servers.find((s) => s.key === 'ceiling');
  const peer = r.servers.find((s) => s.key === 'peer');
  const out: string[] = [];
  out.push(`# Bench ${r.date}${r.settings.quick ? ' (quick)' : ''}${r.settings.only ? ` (only ${r.settings.only.join(', ')})` : ''}`, '');
  out.push(
    `- date (UTC): ${r.date}`,
    `- os.availableParallelism(): ${r.machine.availableParallelism} (the load generator shares these cores with the server)`,
    `- CPU: ${r.machine.cpu}; memory ${r.machine.totalMemMb} MB; ${r.machine.platform}`,
    `- Node ${r.machine.node}`,
    `- load: ${r.settings.durationS} s per step after a ${r.settings.warmupS} s warm-up at the same connection count; connections ${r.settings.connections.join(', ')}; one request in flight per connection (closed loop); autocannon in the bench process`,
    `- peer: ${r.settings.peer ?? 'none'}`,
    `- wall time: ${Math.round(r.elapsedS)} s`,
    '',
  );

  out.push('## Load', '');
  out.push(
    'rps: responses completed in the step / its duration. p50/p99/max: exact, over every response of the step. errors: non-2xx + connection errors (timeouts included) + 2xx answers with GraphQL `errors`. ok: 2xx without `errors` in the measured step. rows, nothingLost: whole process run (see History check). peak RSS (step): the server VmHWM during the step, warm-up included, reset at its start.',
    '',
  );
  const header = ['server', 'conns', 'rps', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'ok', 'rows (run)', 'nothingLost (run)', '× ceiling'];
  if (peer) header.push('× peer');
  header.push('peak RSS MB (step)');
  const rows: Array<Array<string | number>> = [];
  for (const server of r.servers) {
    for (const { measured: m, peakRssMb } of server.steps) {
      const cells: Array<string | number> = [
        server.label, m.connections, m.rps, m.p50Ms, m.p99Ms, m.maxMs, errorCount(m), m.ok,
        server.rows ?? '–', server.nothingLost === undefined ? '–' : String(server.nothingLost),
        server.key === 'ceiling' ? '1.00×' : ratio(m.rps, stepAt(ceiling, m.connections)?.rps ?? 0),
      ];
      if (peer) cells.push(server.key === 'peer' ? '1.00×' : ratio(m.rps, stepAt(peer, m.connections)?.rps ?? 0));
      cells.push(peakRssMb ?? '–');
      rows.push(cells);
    }
  }
  out.push(table(header, rows), '');

  out.push('## History check', '');
  out.push('After each gateway run: SIGTERM, wait for exit, then `SELECT count(*) FROM "Prediction"`. ok responses include the warm-ups. unanswered: requests sent that never got a response. idle RSS: once ready, before any request.', '');
  out.push(
    table(
      ['server', 'ok responses (run)', 'rows in history', 'nothingLost', 'unanswered', 'idle RSS MB', 'peak RSS MB', 'exit'],
      r.servers.map((s) => [s.label, s.okTotal, s.rows ?? '–', s.nothingLost === undefined ? '–' : String(s.nothingLost), s.unansweredTotal, s.idleRssMb ?? '–', s.peakRssMb ?? '–', s.exit ?? '–']),
    ),
    '',
  );

  out.push('## Raw ONNX Runtime (in-process limit)', '');
  out.push('iris `model.onnx`, one session, intraOpNumThreads 1, interOpNumThreads 1, graphOptimizationLevel all; `session.run` awaited back to back.', '');
  out.push(table(['batch', 'runs/s', 'rows/s', 'µs per run', 'runs', 's'], r.rawOnnx.map((f) => [f.batch, f.runsPerS, f.rowsPerS, f.usPerRun, f.runs, f.seconds])), '');

  out.push('## Memory per request', '');
  out.push(...(r.amplification ? renderAmplification(r.amplification) : ['Not run (see notes).']), '');

  out.push('## Generation: KV cache (in-process)', '');
  out.push(...(r.kvCache ? renderKvCache(r.kvCache) : ['Not run (see notes).']), '');

  out.push('## Batch jobs', '');
  out.push(...(r.batch ? renderBatch(r.batch, r.rawOnnx) : ['Not run (see notes).']), '');

  out.push('## Scale-out (PostgreSQL, Redis, nginx)', '');
  out.push(...renderScaleOut(r.scaleOut, r.settings.durationS));
  out.push('## Metrics and logs', '');
  out.push(...(r.metrics ? renderMetrics(r.metrics) : ['Not run (see notes).']), '');
  out.push('## Shadow traffic', '');
  out.push(...(r.shadow ? renderShadow(r.shadow) : ['Not run (see notes).']), '');

  out.push('## Read benchmark', '');
  out.push('`{ predictions(first: 100) { edges { node { id label createdAt model { name kind versions { version status } } } } } }`', '');
  const load = r.read.load;
  if (load) {
    const m = load.measured;
    out.push(
      `Against the batching-on gateway after its write steps (${load.edges} edges, ${load.responseBytes} bytes per answer):`,
      '',
      table(['conns', 'rps', 'p50 ms', 'p99 ms', 'errors', 'ok'], [[m.connections, m.rps, m.p50Ms, m.p99Ms, errorCount(m), m.ok]]),
      '',
    );
  } else out.push('HTTP read load: not run (see notes).', '');
  const st = r.read.statements;
  if (st) out.push(`SQL statements for one read request (in-process, after ${st.inserted} predictions, ${st.edges} edges returned): **${st.statements}**`, '');
  else out.push('SQL statement count: not measured (see notes).', '');

  out.push('## Targets', '');
  out.push(table(['target', 'result', 'detail'], r.targets.map((t) => [t.name, t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL', t.detail])), '');

  out.push('## Notes', '');
  out.push(...(r.notes.length ? r.notes.map((n) => `- ${n}`) : ['- nothing unusual']), '');

  out.push('## Experiments', '', readExperiments(), '');
  return out.join('\n');
}

/**
 * Writes `<UTC yyyy-mm-ddTHH-MM>.md` and `.json` under `dir`, and copies both to `latest.*`;
 * with a `partial` tag (a run of some sections only) the names end in `-<partial>` and
 * `latest.*` is left alone.
 */
export function writeResults(dir: string, r: BenchResult, markdown: string, partial?: string): string[] {
  mkdirSync(dir, { recursive: true });
  const stamp = `${r.date.slice(0, 16).replace(':', '-')}${partial ? `-${partial}` : ''}`;
  const md = join(dir, `${stamp}.md`);
  const json = join(dir, `${stamp}.json`);
  writeFileSync(md, markdown);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  if (partial) return [md, json];
  copyFileSync(md, join(dir, 'latest.md'));
  copyFileSync(json, join(dir, 'latest.json'));
  return [md, json, join(dir, 'latest.md'), join(dir, 'latest.json')];
}

/** The experiment log kept by hand in bench/experiments.md, embedded in every report. */
function readExperiments(): string {
  const file = fileURLToPath(new URL('./experiments.md', import.meta.url));
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : '(none recorded)';
}
