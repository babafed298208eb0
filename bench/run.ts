/**
 * `npm run bench`: measures the gateway against a ceiling (a bare graphql-yoga server), optionally a
 * peer, the raw ONNX Runtime limit and the history read path, then prints a markdown report and
 * writes it (and the raw figures as JSON) under --out.
 *
 *   npm run bench -- [--duration 10] [--connections 1,16,64,256] [--peer http://127.0.0.1:8100/predict]
 *                    [--quick] [--out bench/results] [--only batch,raw-onnx,…]
 *
 * The scale-out sections (`postgres-commit`, `replicas`, `response-cache`, `fan-out`; scale-out.ts)
 * need PostgreSQL on 127.0.0.1:5432 (trust), Redis on 127.0.0.1:6379 and nginx on PATH; each
 * row gets a fresh database and Redis prefix, removed afterwards. `BENCH_FAN_OUT_RATES=50,10`,
 * `BENCH_FAN_OUT_SUBSCRIBERS=1000` and `BENCH_FAN_OUT_CPU_PROF=<dir>` (profile the one-process
 * gateway with --cpu-prof) adjust the fan-out.
 *
 * `--only` runs the named sections alone (SECTIONS below; `batch` brings `raw-onnx`, the
 * reference row of its table); such a partial report is written as `<time>-only-….md` and
 * `.json`, and `latest.*` is left alone.
 *
 * Contracts:
 * - Only http://127.0.0.1 is ever loaded; servers are started here on ephemeral ports, each
 *   gateway configuration in a fresh process on a fresh SQLite file in a temp folder.
 * - Child processes are killed whatever happens (processes.ts installs the hooks).
 * - Exit code 0 when every section ran, whatever the targets say; 1 when a section crashed (the
 *   report is still written with what was measured), 2 for bad options.
 * - Progress goes to stderr; stdout carries only the markdown report.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { assertLoopback, runStep, type LoadStep, type LoadTarget } from './load.ts';
import { describeExit, installCleanup, killAllChildren, readMemoryKb, sampleRss, startCommand, startServer, stopServer, type ServerProcess } from './processes.ts';
import { runAmplificationBench } from './amplification.ts';
import { batchTargets, runBatchBench } from './batch.ts';
import { runKvCacheBench } from './kv-cache.ts';
import { runFanOutBench, runPostgresCommitBench, runReplicasBench, runResponseCacheBench } from './scale-out.ts';
import { runMetricsBench } from './metrics.ts';
import { runShadowBench } from './shadow.ts';
import { runRawOnnx } from './raw-onnx.ts';
import { countReadStatements, PREDICT_BODY, readLoad } from './read.ts';
import { computeTargets, errorCount, renderMarkdown, writeResults, type BenchResult, type ServerKey, type ServerRun } from './report.ts';

const WARMUP_S = 2;
const READ_CONNECTIONS = 16;
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Section names for `--only`, in the order they run. */
const SECTIONS = ['raw-onnx', 'kv-cache', 'read-statements', 'ceiling', 'gateway-on', 'gateway-off', 'gateway-normal-sync', 'memory', 'batch', 'metrics', 'shadow', 'postgres-commit', 'replicas', 'response-cache', 'fan-out', 'peer'] as const;
type SectionId = (typeof SECTIONS)[number];

interface Options {
  durationS: number;
  connections: number[];
  peer: string | null;
  quick: boolean;
  out: string;
  /** Sections to run; null: all. */
  only: ReadonlySet<SectionId> | null;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: 'string' },
      connections: { type: 'string' },
      peer: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      only: { type: 'string' },
    },
  });
  const durationS = Number(values.duration ?? (values.quick ? 3 : 10));
  if (!Number.isFinite(durationS) || durationS <= 0) throw new Error(`--duration: expected seconds > 0, got ${values.duration}`);
  const connections = (values.connections ?? '1,16,64,256').split(',').map((c) => Number(c.trim()));
  if (connections.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`--connections: expected a list like 1,16,64,256, got ${values.connections}`);
  const peer = values.peer ?? null;
  if (peer) assertLoopback(peer);
  let only: Set<SectionId> | null = null;
  if (values.only !== undefined) {
    const names = values.only.split(',').map((name) => name.trim());
    const unknown = names.filter((name) => !(SECTIONS as readonly string[]).includes(name));
    if (unknown.length > 0 || names.length === 0) throw new Error(`--only: expected section names from ${SECTIONS.join(', ')}, got ${values.only}`);
    only = new Set(names as SectionId[]);
    if (only.has('batch')) only.add('raw-onnx');
  }
  return { durationS, connections, peer, quick: values.quick ?? false, out: values.out ?? join(REPO_ROOT, 'bench', 'results'), only };
}

const log = (message: string) => console.error(`bench: ${message}`);

/** One request before the load: proves the target answers the bench's request (and counts if it succeeded). */
async function probe(target: LoadTarget): Promise<boolean> {
  const res = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: target.body, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status < 200 || res.status >= 300 || text.includes('"errors"')) throw new Error(`${target.url} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
  return true;
}

async function runSteps(label: string, target: LoadTarget, options: Options, pid?: number): Promise<LoadStep[]> {
  const steps: LoadStep[] = [];
  for (const connections of options.connections) {
    // VmHWM := current RSS, so each step's peak is its own (Linux /proc/<pid>/clear_refs).
    if (pid !== undefined) writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const step = await runStep(target, connections, options.durationS, WARMUP_S);
    const hwm = pid === undefined ? undefined : readMemoryKb(pid)?.hwmKb;
    if (hwm !== undefined) step.peakRssMb = Math.round((hwm / 1024) * 10) / 10;
    const m = step.measured;
    log(`${label} @${connections}: ${m.rps} rps, p50 ${m.p50Ms} ms, p99 ${m.p99Ms} ms, errors ${errorCount(m)}, ok ${m.ok} (drain ${m.drainS} s), peak RSS ${step.peakRssMb ?? '–'} MB`);
    steps.push(step);
  }
  return steps;
}

function totals(steps: LoadStep[], probeOk: boolean) {
  const runs = steps.flatMap((s) => [s.warmup, s.measured]);
  return {
    okTotal: runs.reduce((n, r) => n + r.ok, probeOk ? 1 : 0),
    unansweredTotal: runs.reduce((n, r) => n + r.unanswered, 0),
  };
}

function warningsOf(server: ServerProcess): string[] {
  const lines = server.lines
    .filter((l) => ('text' in l && !('level' in l)) || (typeof l.level === 'number' && l.level >= 40))
    .map((l) => JSON.stringify(l));
  const stderr = server.stderr().trim();
  return stderr ? [...lines, `stderr: ${stderr}`] : lines;
}

function countPredictions(dbFile: string): number {
  const db = new Database(dbFile, { fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM "Prediction"').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/**
 * A server started here: start, probe, load steps, optional extra work (`after`), peak RSS, SIGTERM.
 * For gateways (`dbFile` set), counts the stored rows once the process has exited.
 */
async function runChild(
  key: ServerKey,
  label: string,
  script: string,
  env: Record<string, string>,
  options: Options,
  extra: { readyPath?: string; dbFile?: string; after?: (url: string) => Promise<void>; nodeArgs?: string[] },
): Promise<ServerRun> {
  log(`starting ${label}`);
  const server = await startServer({ name: label, script, cwd: REPO_ROOT, env, readyPath: extra.readyPath, nodeArgs: extra.nodeArgs });
  const idle = readMemoryKb(server.pid);
  const idleRssMb = idle ? Math.round((idle.rssKb / 1024) * 10) / 10 : undefined;
  const rss = sampleRss(server.pid);
  const target = { url: `${server.url}/graphql`, body: PREDICT_BODY };
  let steps: LoadStep[] = [];
  let probeOk = false;
  let peakRssMb: number | undefined;
  let peakRssBeforeReadMb: number | undefined;
  let exit: string;
  try {
    probeOk = await probe(target);
    steps = await runSteps(label, target, options, server.pid);
    if (extra.after) {
      const hwm = readMemoryKb(server.pid)?.hwmKb;
      if (hwm !== undefined) peakRssBeforeReadMb = Math.round((hwm / 1024) * 10) / 10;
      await extra.after(server.url);
    }
  } finally {
    peakRssMb = rss.finish();
    const status = await stopServer(server);
    exit = status.killed ? `killed after SIGTERM timeout (${describeExit(status)})` : describeExit(status);
  }
  const run: ServerRun = { key, label, url: server.url, steps, ...totals(steps, probeOk), idleRssMb, peakRssMb, peakRssBeforeReadMb, exit, warnings: warningsOf(server) };
  if (extra.dbFile) {
    run.rows = countPredictions(extra.dbFile);
    run.nothingLost = run.rows === run.okTotal;
  }
  log(`${label}: stopped (${exit}), peak RSS ${peakRssMb} MB${run.rows === undefined ? '' : `, rows ${run.rows} vs ok ${run.okTotal}`}`);
  return run;
}

/** Temp folders still to remove; also removed on exit (Ctrl-C) after the children are killed. */
const tempDirs = new Set<string>();
process.on('exit', () => {
  killAllChildren();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function runGateway(
  key: ServerKey,
  label: string,
  env: Record<string, string>,
  options: Options,
  after?: (url: string) => Promise<void>,
): Promise<ServerRun> {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-gateway-'));
  tempDirs.add(dir);
  const dbFile = join(dir, 'bench.db');
  const { nodeArgs, script } = startCommand(REPO_ROOT);
  try {
    return await runChild(
      key,
      label,
      script,
      // LOG_LEVEL=info: the "listening" line (with the port) is logged at info.
      { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: `file:${dbFile}`, ...env },
      options,
      { readyPath: '/readyz', dbFile, after, nodeArgs },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

async function runPeer(url: string, options: Options): Promise<ServerRun> {
  const target = { url, body: JSON.stringify({ features: [5.1, 3.5, 1.4, 0.2] }) };
  log(`peer ${url}`);
  const probeOk = await probe(target);
  const steps = await runSteps('peer', target, options);
  return { key: 'peer', label: 'peer', url, steps, ...totals(steps, probeOk), warnings: [] };
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`bench: ${(error as Error).message}`);
    return 2;
  }
  installCleanup();
  const started = Date.now();
  const machine = {
    availableParallelism: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    totalMemMb: Math.round(os.totalmem() / 2 ** 20),
  };
  const runs = (id: SectionId) => options.only === null || options.only.has(id);
  const servers = (['ceiling', 'gateway-on', 'gateway-off', 'gateway-normal-sync'] as const).filter(runs).length + (options.peer && runs('peer') ? 1 : 0);
  const estimateS =
    servers * options.connections.length * (options.durationS + WARMUP_S + 1) + (runs('gateway-on') ? options.durationS + WARMUP_S : 0) + 30 + (runs('batch') ? 3 * options.durationS + WARMUP_S + 40 : 0) +
    // Scale-out: a fresh topology per row, ~8 s to start each.
    (runs('postgres-commit') ? 6 * (options.durationS + WARMUP_S + 8) : 0) +
    (runs('replicas') ? 4 * (options.durationS + WARMUP_S + 10) : 0) +
    (runs('response-cache') ? 6 * (options.durationS + WARMUP_S) + 20 : 0) +
    (runs('fan-out') ? 4 * (2 * options.durationS + 40) : 0) +
    (runs('shadow') ? (options.quick ? 40 : 80) + 20 : 0);
  log(`os.availableParallelism() = ${machine.availableParallelism} (${machine.cpu}), Node ${machine.node}; the load generator shares these cores with the server`);
  log(`duration ${options.durationS} s per step, connections ${options.connections.join(',')}, peer ${options.peer ?? 'none'}; about ${Math.ceil(estimateS / 60)} min`);

  const result: BenchResult = {
    date: new Date(started).toISOString(),
    machine,
    settings: { durationS: options.durationS, warmupS: WARMUP_S, connections: options.connections, peer: options.peer, quick: options.quick, only: options.only ? [...options.only] : null },
    servers: [],
    rawOnnx: [],
    kvCache: null,
    amplification: null,
    batch: null,
    scaleOut: { fanOut: null, replicas: null, postgresCommit: null, responseCache: null },
    metrics: null,
    shadow: null,
    read: { load: null, statements: null },
    targets: [],
    notes: [],
    elapsedS: 0,
  };
  let crashed = false;
  /** Runs one section (unless `--only` leaves it out); a crash is noted (and makes the exit code 1) but the others still run. */
  const section = async (id: SectionId, name: string, body: () => Promise<void>) => {
    if (!runs(id)) return;
    try {
      await body();
    } catch (error) {
      crashed = true;
      const message = (error as Error).stack ?? String(error);
      result.notes.push(`CRASH in ${name}: ${(error as Error).message}`);
      log(`${name} crashed: ${message}`);
    }
  };

  // In-process sections first, while no server competes for the cores.
  await section('raw-onnx', 'raw ONNX', async () => {
    log('raw ONNX Runtime, ~3 s per batch size');
    result.rawOnnx = await runRawOnnx(join(REPO_ROOT, 'models/iris/1/model.onnx'), 3, [1, 64]);
  });
  await section('kv-cache', 'KV cache (in-process)', async () => {
    log('generation per-step cost with and without the KV cache, ~20 s');
    result.kvCache = await runKvCacheBench();
  });
  await section('read-statements', 'read statements (in-process)', async () => {
    log('counting SQL statements of the read query in-process');
    result.read.statements = await countReadStatements(REPO_ROOT, 120);
  });
  await section('ceiling', 'ceiling', async () => {
    result.servers.push(await runChild('ceiling', 'ceiling (bare yoga)', 'bench/ceiling.ts', {}, options, {}));
  });
  await section('gateway-on', 'gateway (batching on)', async () => {
    const readAfterWrites = async (url: string) => {
      await section('gateway-on', 'read load', async () => {
        log(`read query at ${READ_CONNECTIONS} connections`);
        result.read.load = await readLoad(url, READ_CONNECTIONS, options.durationS, WARMUP_S);
        const m = result.read.load.measured;
        log(`read @${READ_CONNECTIONS}: ${m.rps} rps, p50 ${m.p50Ms} ms, p99 ${m.p99Ms} ms, errors ${errorCount(m)}`);
      });
    };
    result.servers.push(await runGateway('gatewayOn', 'gateway (batching on)', { BATCHING: 'true' }, options, readAfterWrites));
  });
  await section('gateway-off', 'gateway (batching off)', async () => {
    result.servers.push(await runGateway('gatewayOff', 'gateway (batching off)', { BATCHING: 'false' }, options));
  });
  await section('gateway-normal-sync', 'gateway (SQLITE_SYNCHRONOUS=NORMAL)', async () => {
    result.servers.push(await runGateway('gatewayNormalSync', 'gateway (batching on, synchronous=NORMAL)', { BATCHING: 'true', SQLITE_SYNCHRONOUS: 'NORMAL' }, options));
  });
  await section('memory', 'memory per request', async () => {
    log('memory amplification of big requests: one fresh gateway per request form, ~1 min');
    const { nodeArgs, script } = startCommand(REPO_ROOT);
    result.amplification = await runAmplificationBench(REPO_ROOT, script, nodeArgs);
  });
  await section('batch', 'batch jobs', async () => {
    log(`batch jobs: a 100,000-row CSV through a fresh gateway, then predict at 16 connections idle and during a job (${options.durationS} s each), then the CLI; ~${Math.ceil((3 * options.durationS + WARMUP_S + 40) / 10) * 10} s`);
    const { nodeArgs, script } = startCommand(REPO_ROOT);
    result.batch = await runBatchBench({ repoRoot: REPO_ROOT, script, nodeArgs, durationS: options.durationS, warmupS: WARMUP_S });
    if (result.batch.crashes.length > 0) throw new Error(result.batch.crashes.join('; '));
  });
  await section('metrics', 'guard rails: metrics and API keys', async () => {
    // 2 s slices, interleaved: 15 per configuration (6 with --quick), whatever --duration says.
    const slices = options.quick ? 6 : 15;
    log(`metrics: predict at 64 connections, open / METRICS=true / AUTH_MODE=required with a key and METRICS=true, three servers loaded in turn, ${slices} slices of 2 s each, then the log line in-process`);
    const { nodeArgs, script } = startCommand(REPO_ROOT);
    result.metrics = await runMetricsBench({ repoRoot: REPO_ROOT, script, nodeArgs, connections: 64, durationS: slices * 2, warmupS: WARMUP_S, rounds: slices, log });
    const m = result.metrics;
    log(`metrics: medians ${m.sides.map((s) => `${s.config} ${s.rps} rps (${s.rpsLossPercent}% loss), ${s.cpuUsPerRequest} µs CPU`).join('; ')}; log line ${m.logLine.syncUs} µs sync, ${m.logLine.asyncUs} µs async`);
  });
  await section('shadow', 'shadow traffic', async () => {
    // 2 s slices at 1 connection, interleaved: 20 per configuration (10 with --quick), whatever --duration says.
    const slices = options.quick ? 10 : 20;
    log(`shadow: predict at 1 connection, without and with setShadow(iris, 2), two servers loaded in turn, ${slices} slices of 2 s each`);
    const { nodeArgs, script } = startCommand(REPO_ROOT);
    result.shadow = await runShadowBench({ repoRoot: REPO_ROOT, script, nodeArgs, slices, sliceS: 2, warmupS: WARMUP_S, log });
    log(`shadow: medians ${result.shadow.sides.map((s) => `${s.config} ${s.rps} rps, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`).join('; ')}`);
  });
  // Scale-out (issue 10): PostgreSQL, Redis and nginx on 127.0.0.1.
  const scaleOut = { repoRoot: REPO_ROOT, durationS: options.durationS, warmupS: WARMUP_S, log };
  await section('postgres-commit', 'group commit on PostgreSQL and SQLite', async () => {
    result.scaleOut.postgresCommit = await runPostgresCommitBench(scaleOut);
  });
  await section('replicas', 'one process vs two replicas behind nginx', async () => {
    result.scaleOut.replicas = await runReplicasBench(scaleOut);
  });
  await section('response-cache', 'response cache hits and misses', async () => {
    result.scaleOut.responseCache = await runResponseCacheBench(scaleOut);
  });
  await section('fan-out', 'subscription fan-out', async () => {
    result.scaleOut.fanOut = await runFanOutBench(scaleOut);
  });
  if (options.peer) {
    const peer = options.peer;
    await section('peer', 'peer', async () => {
      result.servers.push(await runPeer(peer, options));
    });
  }

  for (const server of result.servers) {
    if (server.nothingLost === false) {
      const diff = (server.rows ?? 0) - server.okTotal;
      const why =
        diff < 0
          ? `${-diff} acknowledged predictions MISSING from the history`
          : diff <= server.unansweredTotal
            ? `${diff} more rows than ok responses, at most the ${server.unansweredTotal} requests the bench gave up on (timeouts): committed after the client stopped waiting, nothing acknowledged was lost`
            : `${diff} more rows than ok responses, more than the ${server.unansweredTotal} unanswered requests explain`;
      result.notes.push(`${server.label}: ${server.rows} rows vs ${server.okTotal} ok responses: ${why}`);
    }
    if (server.unansweredTotal > 0) result.notes.push(`${server.label}: ${server.unansweredTotal} requests sent without a response`);
    if (server.exit && server.exit !== 'code 0') result.notes.push(`${server.label}: exit ${server.exit}`);
    for (const w of server.warnings.slice(0, 10)) result.notes.push(`${server.label} log: \`${w.slice(0, 400)}\``);
    if (server.warnings.length > 10) result.notes.push(`${server.label}: ${server.warnings.length - 10} more warning lines (see the JSON)`);
  }
  const readHost = result.servers.find((s) => s.peakRssBeforeReadMb !== undefined);
  if (result.read.load && readHost) {
    result.notes.push(
      `Peak RSS of ${readHost.label} (${readHost.peakRssMb} MB) includes the read benchmark, which runs in the same process after the write steps; before it: ${readHost.peakRssBeforeReadMb} MB.`,
    );
  }

  const full = result.servers.find((s) => s.key === 'gatewayOn')?.steps.find((s) => s.measured.connections === 64)?.measured;
  const normal = result.servers.find((s) => s.key === 'gatewayNormalSync')?.steps.find((s) => s.measured.connections === 64)?.measured;
  if (full && normal) {
    result.notes.push(
      `Durability cost at 64 connections: synchronous=FULL (the default) ${full.rps} rps, p99 ${full.p99Ms} ms vs NORMAL ${normal.rps} rps, p99 ${normal.p99Ms} ms (FULL/NORMAL ${(full.rps / normal.rps).toFixed(2)}×).`,
    );
  }
  const worst = result.amplification?.reduce((max, f) => Math.max(max, f.amplification), 0);
  if (worst !== undefined) result.notes.push(`Memory per request: worst amplification ${worst}× the bytes in flight (target ≤ 10×).`);
  result.targets = [...computeTargets(result.servers), ...batchTargets(result.batch)];
  result.elapsedS = (Date.now() - started) / 1000;
  const markdown = renderMarkdown(result);
  const files = writeResults(options.out, result, markdown, options.only ? `only-${[...options.only].join('-')}` : undefined);
  process.stdout.write(markdown);
  log(`wrote ${files.join(', ')} in ${Math.round(result.elapsedS)} s`);
  return crashed ? 1 : 0;
}

main().then(
  (code) => {
    killAllChildren();
    process.exit(code);
  },
  (error: unknown) => {
    console.error('bench crashed:', error);
    killAllChildren();
    process.exit(1);
  },
);
