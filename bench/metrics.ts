/**
 * `--only metrics`: what the guard rails cost the predict path (Prometheus metrics, and API
 * keys with metrics), and what the per-operation log line costs.
 *
 * - Three gateways started side by side and loaded in turn, in short slices (open, metrics,
 *   auth+metrics, then metrics, auth+metrics, open, …), one at a time at `connections`: drift of
 *   a shared machine then hits all three alike, and none always goes first. Earlier versions
 *   ran one fresh process per 10 s round; the same configuration then ranged 1,400–3,400
 *   requests/s between rounds, far more than the differences to measure:
 *   - `open`: METRICS=false, AUTH_MODE=off;
 *   - `metrics`: METRICS=true, AUTH_MODE=off;
 *   - `auth+metrics`: METRICS=true, AUTH_MODE=required, every request carrying a valid key with
 *     the `predict` scope (made beforehand with `keys create`, the CLI operators use).
 *   Per slice: requests/s and the server's own CPU time per request (/proc/<pid>/stat
 *   utime+stime ÷ responses). With 2 or more CPUs the server runs on CPU 0 only and this
 *   process (the load generator) on the others: unpinned, the two fought over both cores and
 *   the same configuration ranged ±15% between rounds, more than the differences measured.
 *   The database file is in /dev/shm (memory) when there is one: on disk, each round's rate
 *   followed the disk's fsync latency (the server sat 40% idle waiting on commits, and the same
 *   configuration ranged 2,300–3,260 requests/s), which says nothing about what metrics cost.
 *   A slice with any answer that is not a success throws: a refused key would be cheap
 *   and make the guarded gateway look fast. The medians of each configuration are compared
 *   with `open`'s.
 * - Log line: pino writing the operation line to a pipe drained by another process (what the
 *   server's stdout is under a supervisor), synchronous (pino's stdout default) and
 *   asynchronous (`pino.destination({ sync: false })`, what the gateway uses), µs per line
 *   in-process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { round, runLoad, type LoadTarget } from './load.ts';
import { pinToCpus, startServer, stopServer, type ServerProcess } from './processes.ts';
import { PREDICT_BODY } from './read.ts';

export const GUARD_CONFIGS = ['open', 'metrics', 'auth+metrics'] as const;
export type GuardConfig = (typeof GUARD_CONFIGS)[number];

export interface MetricsRound {
  config: GuardConfig;
  rps: number;
  cpuUsPerRequest: number;
  p99Ms: number;
}

export interface GuardSide {
  config: GuardConfig;
  rps: number;
  cpuUsPerRequest: number;
  /** 1 − rps/open's rps of the medians, in % (0 for open). */
  rpsLossPercent: number;
  /** cpu/open's cpu − 1 of the medians, in % (0 for open). */
  cpuCostPercent: number;
}

export interface MetricsBenchResult {
  connections: number;
  durationS: number;
  /** The server ran on CPU 0 and the load generator on the others. */
  pinned: boolean;
  rounds: MetricsRound[];
  /** Medians per configuration, in GUARD_CONFIGS order. */
  sides: GuardSide[];
  logLine: { syncUs: number; asyncUs: number };
}

/** The environment of each configuration; `auth+metrics` also needs a key in the database. */
const CONFIG_ENV: Record<GuardConfig, Record<string, string>> = {
  open: { METRICS: 'false', AUTH_MODE: 'off' },
  metrics: { METRICS: 'true', AUTH_MODE: 'off' },
  'auth+metrics': { METRICS: 'true', AUTH_MODE: 'required' },
};

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** utime + stime of a process, in seconds (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** µs per operation line written by pino to a pipe that another process drains. */
async function logLineUs(sync: boolean, lines: number): Promise<number> {
  const drain = spawn('sh', ['-c', 'cat > /dev/null'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const fd = (drain.stdin as unknown as { _handle: { fd: number } })._handle.fd;
  const destination = pino.destination({ fd, sync });
  const log = pino({ base: { service: 'onnx-graphql-gateway' } }, destination);
  const fields = { requestId: '3f0c7c52-8f3c-4a55-9a0e-3f6d5e1f6a10', transport: 'http', operationName: null, operationType: 'mutation', fields: ['predict'], durationMs: 1.234, outcome: 'ok', model: 'iris', version: 1, rows: 1 };
  const started = performance.now();
  for (let i = 0; i < lines; i++) log.info(fields, 'graphql operation');
  destination.flushSync();
  const us = ((performance.now() - started) * 1000) / lines;
  drain.stdin.end();
  await new Promise((resolve) => drain.on('exit', resolve));
  return round(us, 2);
}

/** A new key with the `predict` scope in the database at `databaseUrl`, made by the `keys create` CLI. */
function createKey(repoRoot: string, databaseUrl: string): string {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'keys', 'create', '--name', 'bench', '--scopes', 'predict'], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: databaseUrl },
    encoding: 'utf8',
  });
  return (JSON.parse(out.trim().split('\n').at(-1)!) as { key: string }).key;
}

/** One configuration's gateway, started once and loaded in slices. */
interface GuardServer {
  config: GuardConfig;
  server: ServerProcess;
  target: LoadTarget;
  dir: string;
}

async function startGuardServer(config: GuardConfig, options: { repoRoot: string; script: string; nodeArgs: string[]; pinned: boolean }): Promise<GuardServer> {
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bench-metrics-'));
  const databaseUrl = `file:${join(dir, 'bench.db')}`;
  const headers = config === 'auth+metrics' ? { authorization: `Bearer ${createKey(options.repoRoot, databaseUrl)}` } : undefined;
  const server = await startServer({
    name: `gateway ${config}`,
    script: options.script,
    nodeArgs: options.nodeArgs,
    cwd: options.repoRoot,
    env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: databaseUrl, ...CONFIG_ENV[config] },
    readyPath: '/readyz',
    ...(options.pinned ? { cpus: '0' } : {}),
  });
  return { config, server, target: { url: `${server.url}/graphql`, body: PREDICT_BODY, headers }, dir };
}

export async function runMetricsBench(options: {
  repoRoot: string;
  script: string;
  nodeArgs: string[];
  connections: number;
  /** Seconds of load per configuration in all, cut into `rounds` slices. */
  durationS: number;
  warmupS: number;
  rounds: number;
  log: (message: string) => void;
}): Promise<MetricsBenchResult> {
  const rounds: MetricsRound[] = [];
  const cpus = os.availableParallelism();
  const pinned = cpus >= 2;
  const servers: GuardServer[] = [];
  if (pinned) pinToCpus(process.pid, `1-${cpus - 1}`);
  try {
    for (const config of GUARD_CONFIGS) servers.push(await startGuardServer(config, { ...options, pinned }));
    for (const s of servers) {
      const warmup = await runLoad(s.target, options.connections, options.warmupS);
      if (warmup.ok !== warmup.responses) throw new Error(`${s.config}: ${warmup.responses - warmup.ok} warm-up answers were not successes (a refused key would make the guarded gateway look fast)`);
    }
    const sliceS = Math.max(1, options.durationS / options.rounds);
    for (let pass = 0; pass < options.rounds; pass++) {
      // Rotate the order each pass so no configuration always runs first.
      for (let k = 0; k < servers.length; k++) {
        const s = servers[(k + pass) % servers.length]!;
        const before = cpuSeconds(s.server.pid);
        const m = await runLoad(s.target, options.connections, sliceS);
        const cpu = cpuSeconds(s.server.pid) - before;
        if (m.ok !== m.responses || m.unanswered > 0) throw new Error(`${s.config}: ${m.responses - m.ok} answers were not successes, ${m.unanswered} unanswered; the figures would not be comparable`);
        const run = { config: s.config, rps: m.rps, cpuUsPerRequest: Math.round((cpu * 1e6) / Math.max(1, m.responses)), p99Ms: m.p99Ms };
        options.log(`${s.config.padEnd(12)} slice ${pass + 1}: ${run.rps} rps, ${run.cpuUsPerRequest} µs CPU per request, p99 ${run.p99Ms} ms`);
        rounds.push(run);
      }
    }
  } finally {
    for (const s of servers) {
      await stopServer(s.server);
      rmSync(s.dir, { recursive: true, force: true });
    }
    if (pinned) pinToCpus(process.pid, `0-${cpus - 1}`);
  }
  const medians = (config: GuardConfig) => {
    const runs = rounds.filter((r) => r.config === config);
    return { rps: Math.round(median(runs.map((r) => r.rps))), cpuUsPerRequest: Math.round(median(runs.map((r) => r.cpuUsPerRequest))) };
  };
  const open = medians('open');
  const sides = GUARD_CONFIGS.map((config) => {
    const m = medians(config);
    return { config, ...m, rpsLossPercent: round((1 - m.rps / open.rps) * 100, 1), cpuCostPercent: round((m.cpuUsPerRequest / open.cpuUsPerRequest - 1) * 100, 1) };
  });
  options.log('log line: 100,000 lines each, synchronous and asynchronous pino destination');
  const logLine = { syncUs: await logLineUs(true, 100_000), asyncUs: await logLineUs(false, 100_000) };
  return { connections: options.connections, durationS: options.durationS, pinned, rounds, sides, logLine };
}

/** The report's lines for the section. */
export function renderMetrics(r: MetricsBenchResult): string[] {
  const passes = r.rounds.length / GUARD_CONFIGS.length;
  const target = (config: GuardConfig) => (config === 'metrics' ? '< 5%' : config === 'auth+metrics' ? '< 10%' : '');
  return [
    `Predict at ${r.connections} connections; three gateways loaded in turn, ${passes} slices of ${round(r.durationS / passes, 1)} s each per configuration, order rotating; database in /dev/shm; ${r.pinned ? 'server on CPU 0, load generator on the others' : 'server and load generator share the CPU'}; medians:`,
    '',
    '| configuration | requests/s | loss vs open (target) | server CPU per request | CPU vs open |',
    '| --- | --- | --- | --- | --- |',
    ...r.sides.map((s) =>
      s.config === 'open'
        ? `| open (METRICS=false, AUTH_MODE=off) | ${s.rps} | – | ${s.cpuUsPerRequest} µs | – |`
        : `| ${s.config === 'metrics' ? 'metrics (METRICS=true)' : 'auth+metrics (AUTH_MODE=required, valid key, METRICS=true)'} | ${s.rps} | ${s.rpsLossPercent}% (${target(s.config)}) | ${s.cpuUsPerRequest} µs | ${s.cpuCostPercent >= 0 ? '+' : ''}${s.cpuCostPercent}% |`,
    ),
    '',
    `Slices in order: ${r.rounds.map((x) => `${x.config} ${x.rps}`).join(', ')}.`,
    '',
    `Operation log line (pino, to a drained pipe): ${r.logLine.syncUs} µs synchronous, ${r.logLine.asyncUs} µs asynchronous (the gateway's stdout).`,
  ];
}
