/**
 * `--only shadow`: what shadow traffic costs the caller. Two gateways on the same model
 * repository (iris 1, serving by default, and iris 2, a copy of it), one with `setShadow(iris, 2)`:
 * every prediction there also runs on version 2 at bulk priority and stores a ShadowResult row.
 *
 * - Loaded in turn at 1 connection, in 2 s slices, order alternating (the same reasoning as the
 *   metrics section: drift of a shared machine hits both alike). Per slice: requests/s, p50 and
 *   p99 of the caller's latency. Medians per configuration are compared.
 * - Both servers run on CPU 0 only (their ONNX threads too, so the shadow's runs compete with the
 *   caller's for that core), this process on the others; the databases are in /dev/shm.
 * - Afterwards the shadowed gateway's own counters (`Model.shadow`) and `modelComparison(iris, 1, 2)`
 *   are read: every request should have been mirrored (none dropped at 1 connection) and stored.
 */
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { round, runLoad, type LoadTarget } from './load.ts';
import { pinToCpus, startServer, stopServer, type ServerProcess } from './processes.ts';
import { PREDICT_BODY } from './read.ts';

export const SHADOW_CONFIGS = ['no shadow', 'shadow'] as const;
export type ShadowConfig = (typeof SHADOW_CONFIGS)[number];

export interface ShadowSlice {
  config: ShadowConfig;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ShadowSide {
  config: ShadowConfig;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Against `no shadow`'s medians, in %: throughput lost, p50 and p99 added (0 for `no shadow`). */
  rpsLossPercent: number;
  p50AddedPercent: number;
  p99AddedPercent: number;
}

export interface ShadowBenchResult {
  connections: number;
  sliceS: number;
  pinned: boolean;
  slices: ShadowSlice[];
  sides: ShadowSide[];
  /** The shadowed gateway's answers after the load. */
  shadow: {
    /** Predictions answered by that gateway (probe, warm-up and slices). */
    predictions: number;
    counters: { runs: number; failures: number; dropped: number; writeErrors: number; outstanding: number };
    comparison: { count: number; failed: number; agreement: number | null; meanAbsoluteDifference: number | null; primaryLatency: { meanMs: number | null; p95Ms: number | null }; shadowLatency: { meanMs: number | null; p95Ms: number | null } };
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function gql<T>(server: ServerProcess, query: string): Promise<T> {
  const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }), signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (!body.data || body.errors) throw new Error(`${server.name}: ${JSON.stringify(body).slice(0, 300)}`);
  return body.data;
}

export async function runShadowBench(options: { repoRoot: string; script: string; nodeArgs: string[]; slices: number; sliceS: number; warmupS: number; log: (message: string) => void }): Promise<ShadowBenchResult> {
  const connections = 1;
  const cpus = os.availableParallelism();
  const pinned = cpus >= 2;
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'bench-shadow-'));
  const repository = join(dir, 'models');
  cpSync(join(options.repoRoot, 'models', 'iris'), join(repository, 'iris'), { recursive: true });
  cpSync(join(repository, 'iris', '1'), join(repository, 'iris', '2'), { recursive: true });
  const servers: Array<{ config: ShadowConfig; server: ServerProcess; target: LoadTarget }> = [];
  const slices: ShadowSlice[] = [];
  let answered = 0;
  let shadow: ShadowBenchResult['shadow'] | undefined;
  if (pinned) pinToCpus(process.pid, `1-${cpus - 1}`);
  try {
    for (const config of SHADOW_CONFIGS) {
      const server = await startServer({
        name: `gateway ${config}`,
        script: options.script,
        nodeArgs: options.nodeArgs,
        cwd: options.repoRoot,
        env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: `file:${join(dir, `${config.replace(' ', '-')}.db`)}`, MODEL_REPOSITORY: repository, DRIFT_CHECK_INTERVAL_MS: '0' },
        readyPath: '/readyz',
        ...(pinned ? { cpus: '0' } : {}),
      });
      servers.push({ config, server, target: { url: `${server.url}/graphql`, body: PREDICT_BODY } });
    }
    const shadowed = servers.find((s) => s.config === 'shadow')!;
    await gql(shadowed.server, 'mutation { setShadow(model: "iris", version: 2) { version } }');
    for (const s of servers) {
      const warmup = await runLoad(s.target, connections, options.warmupS);
      if (warmup.ok !== warmup.responses) throw new Error(`${s.config}: ${warmup.responses - warmup.ok} warm-up answers were not successes`);
      if (s === shadowed) answered += warmup.ok;
    }
    for (let pass = 0; pass < options.slices; pass++) {
      for (let k = 0; k < servers.length; k++) {
        const s = servers[(k + pass) % servers.length]!;
        const m = await runLoad(s.target, connections, options.sliceS);
        if (m.ok !== m.responses || m.unanswered > 0) throw new Error(`${s.config}: ${m.responses - m.ok} answers were not successes, ${m.unanswered} unanswered`);
        if (s === shadowed) answered += m.ok;
        const slice = { config: s.config, rps: m.rps, p50Ms: m.p50Ms, p99Ms: m.p99Ms };
        options.log(`${s.config.padEnd(9)} slice ${pass + 1}: ${slice.rps} rps, p50 ${slice.p50Ms} ms, p99 ${slice.p99Ms} ms`);
        slices.push(slice);
      }
    }
    // Let the last shadow runs finish, then read what the shadowed gateway counted and stored.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const data = await gql<{ model: { shadow: ShadowBenchResult['shadow']['counters'] }; modelComparison: ShadowBenchResult['shadow']['comparison'] }>(
      shadowed.server,
      `{ model(name: "iris") { shadow { runs failures dropped writeErrors outstanding } }
         modelComparison(model: "iris", a: 1, b: 2) { count failed agreement meanAbsoluteDifference primaryLatency { meanMs p95Ms } shadowLatency { meanMs p95Ms } } }`,
    );
    shadow = { predictions: answered, counters: data.model.shadow, comparison: data.modelComparison };
    options.log(`shadow gateway: ${answered} predictions, counters ${JSON.stringify(shadow.counters)}, ${shadow.comparison.count} pairs stored`);
  } finally {
    for (const s of servers) await stopServer(s.server);
    rmSync(dir, { recursive: true, force: true });
    if (pinned) pinToCpus(process.pid, `0-${cpus - 1}`);
  }
  const medians = (config: ShadowConfig) => {
    const runs = slices.filter((r) => r.config === config);
    return { rps: Math.round(median(runs.map((r) => r.rps))), p50Ms: round(median(runs.map((r) => r.p50Ms)), 2), p99Ms: round(median(runs.map((r) => r.p99Ms)), 2) };
  };
  const base = medians('no shadow');
  const sides = SHADOW_CONFIGS.map((config) => {
    const m = medians(config);
    return {
      config,
      ...m,
      rpsLossPercent: round((1 - m.rps / base.rps) * 100, 1),
      p50AddedPercent: round((m.p50Ms / base.p50Ms - 1) * 100, 1),
      p99AddedPercent: round((m.p99Ms / base.p99Ms - 1) * 100, 1),
    };
  });
  return { connections, sliceS: options.sliceS, pinned, slices, sides, shadow: shadow };
}

/** The report's lines for the section. */
export function renderShadow(r: ShadowBenchResult): string[] {
  const passes = r.slices.length / SHADOW_CONFIGS.length;
  const c = r.shadow.comparison;
  const ms = (x: number | null) => (x === null ? '–' : `${round(x, 3)} ms`);
  return [
    `Predict at ${r.connections} connection; two gateways loaded in turn, ${passes} slices of ${r.sliceS} s each per configuration, order alternating; databases in /dev/shm; ${r.pinned ? 'servers on CPU 0 (shadow runs included), load generator on the others' : 'servers and load generator share the CPU'}; medians:`,
    '',
    '| configuration | requests/s | p50 | p99 | vs no shadow (rps, p50, p99) |',
    '| --- | --- | --- | --- | --- |',
    ...r.sides.map((s) =>
      s.config === 'no shadow'
        ? `| no shadow | ${s.rps} | ${s.p50Ms} ms | ${s.p99Ms} ms | – |`
        : `| shadow (setShadow(iris, 2), a copy of version 1) | ${s.rps} | ${s.p50Ms} ms | ${s.p99Ms} ms | ${-s.rpsLossPercent}%, ${s.p50AddedPercent >= 0 ? '+' : ''}${s.p50AddedPercent}%, ${s.p99AddedPercent >= 0 ? '+' : ''}${s.p99AddedPercent}% |`,
    ),
    '',
    `Slices in order: ${r.slices.map((x) => `${x.config} ${x.rps}`).join(', ')}.`,
    '',
    `Shadowed gateway: ${r.shadow.predictions} predictions answered; shadow runs ${r.shadow.counters.runs}, failures ${r.shadow.counters.failures}, dropped ${r.shadow.counters.dropped}, write errors ${r.shadow.counters.writeErrors}; modelComparison(iris, 1, 2): ${c.count} pairs, agreement ${c.agreement ?? '–'}, mean absolute difference ${c.meanAbsoluteDifference ?? '–'}, primary latency mean ${ms(c.primaryLatency.meanMs)} / p95 ${ms(c.primaryLatency.p95Ms)}, shadow latency mean ${ms(c.shadowLatency.meanMs)} / p95 ${ms(c.shadowLatency.p95Ms)}.`,
  ];
}
