/**
 * `--only metrics`: what Prometheus metrics cost the predict path, and what the per-operation
 * log line costs.
 *
 * - Metrics: the same gateway with METRICS=true and METRICS=false, alternating (on, off, on,
 *   off, …: the machine is shared, so drift hits both), each round a fresh process and
 *   database, one load step at `connections`. Per round: requests/s and the server's own CPU
 *   time per request (/proc/<pid>/stat utime+stime ÷ responses, less noisy than requests/s
 *   when the load generator shares the cores). The medians of each side are compared.
 * - Log line: pino writing the operation line to a pipe drained by another process (what the
 *   server's stdout is under a supervisor), synchronous (pino's stdout default, what the
 *   gateway uses) and asynchronous (`pino.destination({ sync: false })`, what the gateway uses since),
 *   µs per line in-process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { round, runStep } from './load.ts';
import { startServer, stopServer } from './processes.ts';
import { PREDICT_BODY } from './read.ts';

export interface MetricsRound {
  metrics: boolean;
  rps: number;
  cpuUsPerRequest: number;
  p99Ms: number;
}

export interface MetricsBenchResult {
  connections: number;
  durationS: number;
  rounds: MetricsRound[];
  medianOn: { rps: number; cpuUsPerRequest: number };
  medianOff: { rps: number; cpuUsPerRequest: number };
  /** 1 − on/off of the median requests/s, in %. */
  rpsLossPercent: number;
  /** on/off − 1 of the median CPU per request, in %. */
  cpuCostPercent: number;
  logLine: { syncUs: number; asyncUs: number };
}

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

export async function runMetricsBench(options: {
  repoRoot: string;
  script: string;
  nodeArgs: string[];
  connections: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  log: (message: string) => void;
}): Promise<MetricsBenchResult> {
  const rounds: MetricsRound[] = [];
  for (let i = 0; i < options.rounds * 2; i++) {
    const metrics = i % 2 === 0;
    const dir = mkdtempSync(join(os.tmpdir(), 'bench-metrics-'));
    try {
      const server = await startServer({
        name: `gateway METRICS=${metrics}`,
        script: options.script,
        nodeArgs: options.nodeArgs,
        cwd: options.repoRoot,
        env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: `file:${join(dir, 'bench.db')}`, METRICS: String(metrics) },
        readyPath: '/readyz',
      });
      try {
        const target = { url: `${server.url}/graphql`, body: PREDICT_BODY };
        // CPU over warm-up and measured part, divided by the responses of both.
        const before = cpuSeconds(server.pid);
        const step = await runStep(target, options.connections, options.durationS, options.warmupS);
        const cpu = cpuSeconds(server.pid) - before;
        const m = step.measured;
        const run = { metrics, rps: m.rps, cpuUsPerRequest: Math.round((cpu * 1e6) / Math.max(1, m.responses + step.warmup.responses)), p99Ms: m.p99Ms };
        options.log(`metrics ${metrics ? 'on ' : 'off'} round ${(i >> 1) + 1}: ${run.rps} rps, ${run.cpuUsPerRequest} µs CPU per request, p99 ${run.p99Ms} ms`);
        rounds.push(run);
      } finally {
        await stopServer(server);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const side = (on: boolean) => {
    const runs = rounds.filter((r) => r.metrics === on);
    return { rps: Math.round(median(runs.map((r) => r.rps))), cpuUsPerRequest: Math.round(median(runs.map((r) => r.cpuUsPerRequest))) };
  };
  const medianOn = side(true);
  const medianOff = side(false);
  options.log('log line: 100,000 lines each, synchronous and asynchronous pino destination');
  const logLine = { syncUs: await logLineUs(true, 100_000), asyncUs: await logLineUs(false, 100_000) };
  return {
    connections: options.connections,
    durationS: options.durationS,
    rounds,
    medianOn,
    medianOff,
    rpsLossPercent: round((1 - medianOn.rps / medianOff.rps) * 100, 1),
    cpuCostPercent: round((medianOn.cpuUsPerRequest / medianOff.cpuUsPerRequest - 1) * 100, 1),
    logLine,
  };
}

/** The report's lines for the section. */
export function renderMetrics(r: MetricsBenchResult): string[] {
  return [
    `Predict at ${r.connections} connections, ${r.durationS} s per round, ${r.rounds.length / 2} rounds each side, alternating; medians:`,
    '',
    '| METRICS | requests/s | server CPU per request |',
    '| --- | --- | --- |',
    `| true | ${r.medianOn.rps} | ${r.medianOn.cpuUsPerRequest} µs |`,
    `| false | ${r.medianOff.rps} | ${r.medianOff.cpuUsPerRequest} µs |`,
    '',
    `Throughput loss with metrics: ${r.rpsLossPercent}% (target < 5%); CPU per request +${r.cpuCostPercent}%. Rounds: ${r.rounds.map((x) => `${x.metrics ? 'on' : 'off'} ${x.rps}`).join(', ')}.`,
    '',
    `Operation log line (pino, to a drained pipe): ${r.logLine.syncUs} µs synchronous, ${r.logLine.asyncUs} µs asynchronous (the gateway's stdout).`,
  ];
}
