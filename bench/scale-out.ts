/**
 * Scale-out sections (issue 10), each on topologies from cluster.ts:
 *
 * - `postgres-commit`: iris `predict` (closed loop, autocannon) on one process, SQLite vs
 *   PostgreSQL, group commit on (the default) and, on PostgreSQL, off (BATCHING=false).
 *   History rows/s = rows stored after the measured step ÷ its duration; average group size =
 *   rows ÷ transactions from the gateway's shutdown line (`history group commit`, whole run).
 * - `replicas`: the same load at 64 connections on one process against two replicas behind
 *   nginx on one PostgreSQL database and one Redis, with one process behind nginx (nginx's
 *   own cost) and one process on SQLite (the embedded reference) beside them; CPU seconds of
 *   each gateway and of nginx over the measured step.
 * - `response-cache`: a temp repository holding iris twice, as shipped and as `iris_cached`
 *   (`"responseCache": {}` in its model.json); predicts of one repeated input (all hits after
 *   the first) and of a unique input per request (all misses), on the in-process LRU and on
 *   Redis, with uncached iris as the reference; hits are checked afterwards by counting
 *   `cached` rows.
 * - `fan-out`: fan-out.ts on one process and on two replicas behind nginx.
 *
 * Every load runs in the bench process on the same 2 cores as everything it measures.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { round, runLoad, type LoadRun } from './load.ts';
import { startTopology, clusterServicesAnswer, type Topology, type TopologyOptions } from './cluster.ts';
import { cpuSeconds, machineLoad, readCpu, renderFanOut, runFanOut, type FanOutFigure } from './fan-out.ts';
import { PREDICT_BODY } from './read.ts';

export interface ScaleOutOptions {
  repoRoot: string;
  durationS: number;
  warmupS: number;
  log: (message: string) => void;
}

export interface ThroughputRow {
  label: string;
  connections: number;
  measured: LoadRun;
  /** Rows in "Prediction" after the whole run (warm-ups and probe included) and the ok answers over it. */
  rows: number;
  okTotal: number;
  /** Rows stored during the measured step ÷ its duration. */
  rowsPerS?: number;
  /** From the gateways' shutdown lines, summed: transactions and rows over the whole run. */
  groups?: number;
  groupRows?: number;
  /** CPU seconds over the measured step, per process. */
  cpuS: Record<string, number>;
  /** 1-minute load average when the step started (other work on the machine shows here). */
  loadAvg: number;
}

export interface CacheRow extends ThroughputRow {
  cache: string;
  pattern: string;
  /** Rows stored `cached` in this step's model, of all its rows. */
  cachedRows: number;
  modelRows: number;
}

export interface ScaleOutResult {
  fanOut: FanOutFigure[] | null;
  replicas: ThroughputRow[] | null;
  postgresCommit: ThroughputRow[] | null;
  responseCache: CacheRow[] | null;
}

const POSTGRES_REDIS = { database: 'postgres', redis: true } as const;

async function requireServices(): Promise<void> {
  const missing = await clusterServicesAnswer();
  if (missing) throw new Error(missing);
}

function pidsOf(t: Topology): Record<string, number> {
  const pids: Record<string, number> = {};
  t.gateways.forEach((g, i) => (pids[`gateway-${i + 1}`] = g.pid));
  if (t.nginxPid) pids.nginx = t.nginxPid;
  return pids;
}

/** Starts a topology, runs `work` on it, stops it (whatever happens) and adds what only the end knows. */
async function withTopology<T>(o: ScaleOutOptions, options: Omit<TopologyOptions, 'repoRoot'>, work: (t: Topology) => Promise<T>): Promise<{ value: T; rows: number; groups?: number; groupRows?: number; exits: string[] }> {
  const t = await startTopology({ repoRoot: o.repoRoot, ...options });
  o.log(`started ${t.label} at ${t.url}`);
  let value: T;
  let rows = 0;
  let exits: Awaited<ReturnType<Topology['stop']>>;
  try {
    value = await work(t);
    // Every acknowledged predict is committed before its answer: counting now is exact for them.
    rows = await t.countPredictions();
  } finally {
    exits = await t.stop();
  }
  const groups = exits.every((e) => e.groups !== undefined) ? exits.reduce((n, e) => n + e.groups!, 0) : undefined;
  const groupRows = exits.every((e) => e.rows !== undefined) ? exits.reduce((n, e) => n + e.rows!, 0) : undefined;
  return { value, rows, groups, groupRows, exits: exits.map((e) => e.exit) };
}

/** Probe, warm-up + measured step at `connections`, with CPU per process and rows during the step. */
async function throughput(o: ScaleOutOptions, t: Topology, label: string, connections: number, body = PREDICT_BODY, nextBody?: () => string) {
  const target = { url: `${t.url}/graphql`, body, nextBody };
  const probe = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await probe.text();
  if (probe.status !== 200 || text.includes('"errors"')) throw new Error(`${label}: probe answered HTTP ${probe.status}: ${text.slice(0, 300)}`);
  const loadAvg = machineLoad();
  const warmup = await runLoad(target, connections, o.warmupS);
  const rowsBefore = await t.countPredictions();
  const before = readCpu(pidsOf(t));
  const measured = await runLoad(target, connections, o.durationS);
  const cpuS = cpuSeconds(before, readCpu(pidsOf(t)));
  const rowsAfter = await t.countPredictions();
  o.log(`${label} @${connections}: ${measured.rps} rps, p50 ${measured.p50Ms} ms, p99 ${measured.p99Ms} ms, ok ${measured.ok}, CPU ${JSON.stringify(cpuS)}, load ${loadAvg}`);
  return { measured, okRun: 1 + warmup.ok, rowsPerS: round((rowsAfter - rowsBefore) / o.durationS, 1), cpuS, loadAvg };
}

export async function runPostgresCommitBench(o: ScaleOutOptions): Promise<ThroughputRow[]> {
  await requireServices();
  const rows: ThroughputRow[] = [];
  const configs: Array<{ label: string; options: Omit<TopologyOptions, 'repoRoot'> }> = [
    { label: 'SQLite, group commit on', options: { replicas: 1, database: 'sqlite', redis: false, nginx: false } },
    { label: 'PostgreSQL, group commit on', options: { replicas: 1, database: 'postgres', redis: false, nginx: false } },
    { label: 'PostgreSQL, group commit off (BATCHING=false)', options: { replicas: 1, database: 'postgres', redis: false, nginx: false, env: { BATCHING: 'false' } } },
  ];
  for (const config of configs) {
    for (const connections of [16, 64]) {
      let ok = 0;
      const run = await withTopology(o, config.options, async (t) => {
        const r = await throughput(o, t, config.label, connections);
        ok = r.okRun + r.measured.ok;
        return r;
      });
      rows.push({ label: config.label, connections, measured: run.value.measured, rows: run.rows, okTotal: ok, rowsPerS: run.value.rowsPerS, groups: run.groups, groupRows: run.groupRows, cpuS: run.value.cpuS, loadAvg: run.value.loadAvg });
    }
  }
  return rows;
}

export async function runReplicasBench(o: ScaleOutOptions): Promise<ThroughputRow[]> {
  await requireServices();
  const rows: ThroughputRow[] = [];
  const connections = 64;
  const configs: Array<Omit<TopologyOptions, 'repoRoot'>> = [
    { replicas: 1, database: 'sqlite', redis: false, nginx: false },
    { replicas: 1, ...POSTGRES_REDIS, nginx: false },
    { replicas: 1, ...POSTGRES_REDIS, nginx: true },
    { replicas: 2, ...POSTGRES_REDIS, nginx: true },
  ];
  for (const config of configs) {
    let ok = 0;
    let label = '';
    const run = await withTopology(o, config, async (t) => {
      label = t.label;
      const r = await throughput(o, t, t.label, connections);
      ok = r.okRun + r.measured.ok;
      return r;
    });
    rows.push({ label, connections, measured: run.value.measured, rows: run.rows, okTotal: ok, rowsPerS: run.value.rowsPerS, groups: run.groups, groupRows: run.groupRows, cpuS: run.value.cpuS, loadAvg: run.value.loadAvg });
  }
  return rows;
}

const CACHED_PREDICT = (features: number[]) =>
  JSON.stringify({ query: 'mutation($f:[Float!]!){predict(input:{model:"iris_cached",features:$f}){id label}}', variables: { f: features } });
const UNCACHED_PREDICT = JSON.stringify({ query: 'mutation($f:[Float!]!){predict(input:{model:"iris",features:$f}){id label}}', variables: { f: [5.1, 3.5, 1.4, 0.2] } });

/** iris as shipped and as `iris_cached` with `responseCache` on, in a temp folder. */
function cacheRepository(repoRoot: string): string {
  const repo = mkdtempSync(join(os.tmpdir(), 'bench-cache-models-'));
  cpSync(join(repoRoot, 'models/iris'), join(repo, 'iris'), { recursive: true });
  cpSync(join(repoRoot, 'models/iris'), join(repo, 'iris_cached'), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'models/iris/model.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(repo, 'iris_cached', 'model.json'), JSON.stringify({ ...manifest, responseCache: {} }));
  return repo;
}

async function cachedCounts(t: Topology, model: string): Promise<{ cached: number; all: number }> {
  const sql = `SELECT count(*) AS "all", sum(CASE WHEN cached THEN 1 ELSE 0 END) AS "cached" FROM "Prediction" WHERE "modelName" = '${model}'`;
  if (t.databaseUrl.startsWith('file:')) {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(t.databaseUrl.slice('file:'.length), { fileMustExist: true });
    try {
      const row = db.prepare(sql).get() as { all: number; cached: number | null };
      return { all: row.all, cached: row.cached ?? 0 };
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: t.databaseUrl });
  await client.connect();
  try {
    const row = (await client.query<{ all: string; cached: string | null }>(sql)).rows[0]!;
    return { all: Number(row.all), cached: Number(row.cached ?? 0) };
  } finally {
    await client.end();
  }
}

export async function runResponseCacheBench(o: ScaleOutOptions): Promise<CacheRow[]> {
  await requireServices();
  const repo = cacheRepository(o.repoRoot);
  const rows: CacheRow[] = [];
  const connections = 64;
  try {
    for (const cache of ['in-process LRU', 'Redis'] as const) {
      const options = { replicas: 1, database: 'sqlite', redis: cache === 'Redis', nginx: false, env: { MODEL_REPOSITORY: repo } } as const;
      await withTopology(o, options, async (t) => {
        let unique = 0;
        const patterns: Array<{ pattern: string; model: string; body: string; nextBody?: () => string }> = [
          { pattern: 'cache off (iris as shipped)', model: 'iris', body: UNCACHED_PREDICT },
          { pattern: 'all hits (one input repeated)', model: 'iris_cached', body: CACHED_PREDICT([6.1, 2.8, 4.7, 1.2]) },
          // Unique inputs: 4 features from a counter, never repeated within a run.
          { pattern: 'all misses (unique inputs)', model: 'iris_cached', body: CACHED_PREDICT([5, 3, 2, 0.5]), nextBody: () => { const i = ++unique; return CACHED_PREDICT([4 + (i % 1000) / 1000, 2 + (Math.floor(i / 1000) % 1000) / 1000, 1 + Math.floor(i / 1e6) / 1000, 0.25]); } },
        ];
        for (const p of patterns) {
          const before = await cachedCounts(t, p.model);
          const r = await throughput(o, t, `${cache}: ${p.pattern}`, connections, p.body, p.nextBody);
          const after = await cachedCounts(t, p.model);
          rows.push({
            label: `${cache}: ${p.pattern}`, cache, pattern: p.pattern, connections, measured: r.measured, rows: after.all - before.all, okTotal: r.okRun + r.measured.ok,
            rowsPerS: r.rowsPerS, cpuS: r.cpuS, loadAvg: r.loadAvg, cachedRows: after.cached - before.cached, modelRows: after.all - before.all,
          });
        }
      });
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
  return rows;
}

export async function runFanOutBench(o: ScaleOutOptions): Promise<FanOutFigure[]> {
  await requireServices();
  const figures: FanOutFigure[] = [];
  const profileDir = process.env.BENCH_FAN_OUT_CPU_PROF;
  const subscribers = Number(process.env.BENCH_FAN_OUT_SUBSCRIBERS ?? 1000);
  const rates = (process.env.BENCH_FAN_OUT_RATES ?? '50,10').split(',').map(Number);
  const configs: Array<Omit<TopologyOptions, 'repoRoot'>> = [
    { replicas: 1, database: 'sqlite', redis: false, nginx: false },
    // A profiling run (BENCH_FAN_OUT_CPU_PROF=<dir>: --cpu-prof on the gateway) profiles the one process only.
    ...(profileDir ? [] : [{ replicas: 2, ...POSTGRES_REDIS, nginx: true }]),
  ];
  for (const rate of rates) {
    for (const config of configs) {
      const extraNodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : undefined;
      const run = await withTopology(o, { ...config, extraNodeArgs }, async (t) => {
        o.log(`fan-out: ${subscribers} subscribers, ${rate} predictions/s for ${o.durationS} s on ${t.label} (load ${machineLoad()})`);
        const figure = await runFanOut(t.label, { url: t.url, subscribers, rate, durationS: o.durationS, pids: pidsOf(t) });
        o.log(`fan-out ${t.label} @${rate}/s: missed ${figure.missed} of ${figure.expected}, from answer p50 ${figure.fromAnswer.p50Ms} p99 ${figure.fromAnswer.p99Ms} ms, answered ${figure.answered}/${figure.sent}, CPU ${JSON.stringify(figure.cpuS)}`);
        return figure;
      });
      figures.push(run.value);
    }
  }
  return figures;
}

function table(header: string[], rows: Array<Array<string | number>>): string[] {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)];
}

const cpu = (r: ThroughputRow) => Object.entries(r.cpuS).map(([k, v]) => `${k} ${v}`).join(', ');
/** The gateways' CPU per ok answer in the measured step, µs: steadier than requests/s on a busy machine. */
const cpuPerRequest = (r: ThroughputRow) => {
  const gateways = Object.entries(r.cpuS).filter(([k]) => k.startsWith('gateway')).reduce((n, [, v]) => n + v, 0);
  return r.measured.ok > 0 ? Math.round((gateways * 1e6) / r.measured.ok) : '–';
};

export function renderScaleOut(r: ScaleOutResult, durationS: number): string[] {
  const out: string[] = [];
  out.push('### Group commit: PostgreSQL beside SQLite', '');
  if (r.postgresCommit) {
    out.push(
      `iris \`predict\`, one gateway process, a fresh database per row (PostgreSQL 127.0.0.1:5432 over TCP; SQLite file, synchronous=FULL). rows/s: rows stored during the ${durationS} s step ÷ its duration. group: rows ÷ transactions over the whole run (probe and warm-up included), from the gateway's shutdown line.`,
      '',
      ...table(
        ['database', 'conns', 'rps', 'p50 ms', 'p99 ms', 'history rows/s', 'avg group', 'rows == ok (run)', 'gateway CPU s', 'gateway CPU µs/request', 'load avg'],
        r.postgresCommit.map((x) => [
          x.label, x.connections, x.measured.rps, x.measured.p50Ms, x.measured.p99Ms, x.rowsPerS ?? '–',
          x.groups ? round((x.groupRows ?? 0) / x.groups, 1) : 'off', `${x.rows === x.okTotal} (${x.rows} / ${x.okTotal})`, cpu(x), cpuPerRequest(x), x.loadAvg,
        ]),
      ),
      '',
    );
  } else out.push('Not run (see notes).', '');

  out.push('### One process vs two replicas behind nginx', '');
  if (r.replicas) {
    const base = r.replicas.find((x) => x.label === '1 process, PostgreSQL + Redis');
    const two = r.replicas.find((x) => x.label.startsWith('2 replicas'));
    out.push(
      'iris `predict` at 64 connections (autocannon in the bench process). CPU s: each process over the measured step (PostgreSQL and Redis not counted). nginx: the committed `deploy/nginx/gateway.conf`, one worker. The load average column says how busy the machine was with other work when the step began.',
      '',
      ...table(
        ['topology', 'rps', 'p50 ms', 'p99 ms', 'errors', '× 1 process (PG + Redis)', 'rows == ok (run)', 'CPU s', 'gateway CPU µs/request', 'load avg'],
        r.replicas.map((x) => [
          x.label, x.measured.rps, x.measured.p50Ms, x.measured.p99Ms, x.measured.non2xx + x.measured.errors + x.measured.graphqlErrors,
          base ? `${(x.measured.rps / base.measured.rps).toFixed(2)}×` : '–', `${x.rows === x.okTotal} (${x.rows} / ${x.okTotal})`, cpu(x), cpuPerRequest(x), x.loadAvg,
        ]),
      ),
      '',
    );
    if (base && two) out.push(`Two replicas ÷ one process: **${(two.measured.rps / base.measured.rps).toFixed(2)}×**.`, '');
    out.push(
      'What two cores can and cannot show: nginx, both replicas, PostgreSQL, Redis and the load generator all run on the same 2 cores, so a second replica gets no core of its own: it can only take CPU the first replica, the generator and the database would otherwise use. The figure shows the cost of the extra hop and of splitting one machine\'s CPU over more processes; it cannot show scale-out throughput, which needs each replica on its own cores (or host) with the load generator elsewhere. Nothing here says two replicas on two machines would not give close to 2×.',
      '',
    );
  } else out.push('Not run (see notes).', '');

  out.push('### Response cache: hits and misses', '');
  if (r.responseCache) {
    out.push(
      'One gateway process on SQLite; `iris_cached` is iris with `"responseCache": {}`. cached rows: rows stored with `cached = true` in the step (probe and warm-up included) of all the step\'s rows of that model.',
      '',
      ...table(
        ['cache', 'requests', 'rps', 'p50 ms', 'p99 ms', 'errors', 'cached rows', 'gateway CPU s', 'gateway CPU µs/request', 'load avg'],
        r.responseCache.map((x) => [x.cache, x.pattern, x.measured.rps, x.measured.p50Ms, x.measured.p99Ms, x.measured.non2xx + x.measured.errors + x.measured.graphqlErrors, `${x.cachedRows} / ${x.modelRows}`, cpu(x), cpuPerRequest(x), x.loadAvg]),
      ),
      '',
    );
  } else out.push('Not run (see notes).', '');

  out.push('### Subscription fan-out', '');
  out.push(...(r.fanOut ? renderFanOut(r.fanOut) : ['Not run (see notes).']), '');
  return out;
}
