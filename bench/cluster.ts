/**
 * The scale-out topologies the bench starts: gateway processes (as `npm start` runs them) on
 * SQLite or on a fresh PostgreSQL database, optionally sharing one Redis under their own key
 * prefix, optionally behind nginx running the committed `deploy/nginx/gateway.conf`.
 *
 * Contracts:
 * - Every PostgreSQL database is created for the topology (`bench_<hex>` on 127.0.0.1:5432)
 *   and dropped (WITH (FORCE)) by `stop()`; every Redis key under its prefix is deleted.
 * - `stop()` SIGTERMs the gateways (each logs its group-commit figures on the way out), then
 *   stops nginx, then removes what was created, whatever failed before.
 * - nginx runs the tests' main config (test/helpers/nginx.ts) with 8,192 connections per
 *   worker instead of 256: a 1,000-subscriber fan-out through nginx needs two per subscriber
 *   (client side and replica side).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { findNginx, freePort, GATEWAY_CONF, mainConf, renderGatewayConf } from '../test/helpers/nginx.ts';
import { describeExit, startCommand, startServer, stopServer, type ServerProcess } from './processes.ts';

export const POSTGRES_ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TopologyOptions {
  repoRoot: string;
  /** Gateway processes (replicas). */
  replicas: number;
  database: 'sqlite' | 'postgres';
  redis: boolean;
  /** nginx in front (required for more than one replica). */
  nginx: boolean;
  /** Extra environment for every gateway. */
  env?: Record<string, string>;
  /** Node flags added before the script (e.g. `--cpu-prof`). */
  extraNodeArgs?: string[];
}

export interface Topology {
  /** Where clients go: nginx when there is one, else the single gateway. */
  url: string;
  gateways: ServerProcess[];
  /** nginx's worker process, when there is nginx (for CPU accounting). */
  nginxPid?: number;
  databaseUrl: string;
  /** SELECT count(*) FROM "Prediction" (before `stop()`). */
  countPredictions(): Promise<number>;
  /** Stops everything; returns each gateway's exit and its group-commit figures (from its shutdown log line). */
  stop(): Promise<Array<{ exit: string; groups?: number; rows?: number }>>;
  label: string;
}

/** "1 process, SQLite" / "2 replicas behind nginx, PostgreSQL + Redis". */
export function describeTopology(o: Pick<TopologyOptions, 'replicas' | 'database' | 'redis' | 'nginx'>): string {
  const who = o.replicas === 1 ? '1 process' : `${o.replicas} replicas`;
  return `${who}${o.nginx ? ' behind nginx' : ''}, ${o.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}${o.redis ? ' + Redis' : ''}`;
}

export async function startTopology(o: TopologyOptions): Promise<Topology> {
  if (o.replicas > 1 && !o.nginx) throw new Error('more than one replica needs nginx in front');
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = async () => {
    for (const undo of cleanups.reverse()) await undo().catch((error: unknown) => console.error(`bench: cleanup: ${(error as Error).message}`));
    cleanups.length = 0;
  };
  try {
    let databaseUrl: string;
    let count: () => Promise<number>;
    if (o.database === 'postgres') {
      const name = `bench_${randomBytes(6).toString('hex')}`;
      await admin((c) => c.query(`CREATE DATABASE "${name}"`));
      cleanups.push(async () => void (await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))));
      const url = new URL(POSTGRES_ADMIN_URL);
      url.pathname = `/${name}`;
      databaseUrl = url.toString();
      count = async () => {
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        try {
          return Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM "Prediction"')).rows[0]!.n);
        } finally {
          await client.end();
        }
      };
    } else {
      const dir = mkdtempSync(join(os.tmpdir(), 'bench-cluster-'));
      cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, 'bench.db');
      databaseUrl = `file:${file}`;
      count = async () => {
        const { default: Database } = await import('better-sqlite3');
        const db = new Database(file, { fileMustExist: true });
        try {
          return (db.prepare('SELECT count(*) AS n FROM "Prediction"').get() as { n: number }).n;
        } finally {
          db.close();
        }
      };
    }
    const env: Record<string, string> = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: databaseUrl, ...o.env };
    if (o.redis) {
      const prefix = `bench-${randomBytes(6).toString('hex')}:`;
      Object.assign(env, { REDIS_URL, REDIS_PREFIX: prefix });
      cleanups.push(() => deleteRedisPrefix(prefix));
    }
    const { nodeArgs, script } = startCommand(o.repoRoot);
    const gateways: ServerProcess[] = [];
    let exits: Promise<Array<{ exit: string; groups?: number; rows?: number }>> | undefined;
    const stopGateways = () =>
      (exits ??= Promise.all(gateways.map((g) => stopServer(g))).then((statuses) =>
        statuses.map((status, i) => {
          const line = gateways[i]!.lines.find((l) => l.msg === 'history group commit');
          return {
            exit: status.killed ? `killed after SIGTERM timeout (${describeExit(status)})` : describeExit(status),
            groups: typeof line?.groups === 'number' ? line.groups : undefined,
            rows: typeof line?.rows === 'number' ? line.rows : undefined,
          };
        }),
      ));
    cleanups.push(async () => void (await stopGateways()));
    // One after the other: the first applies the PostgreSQL migrations.
    for (let i = 0; i < o.replicas; i++) {
      gateways.push(
        await startServer({ name: `gateway-${i + 1}`, script, cwd: o.repoRoot, env, readyPath: '/readyz', nodeArgs: [...nodeArgs, ...(o.extraNodeArgs ?? [])] }),
      );
    }
    let url = gateways[0]!.url;
    let nginxPid: number | undefined;
    if (o.nginx) {
      const front = await startNginx(gateways.map((g) => new URL(g.url).host));
      url = front.url;
      nginxPid = front.workerPid;
      cleanups.push(front.stop);
    }
    return {
      url,
      gateways,
      nginxPid,
      databaseUrl,
      countPredictions: count,
      label: describeTopology(o),
      async stop() {
        // Cleanups run in reverse: nginx, the gateways, the Redis keys, the database.
        await cleanup();
        return stopGateways();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Whether PostgreSQL and Redis answer (the scale-out sections need both). */
export async function clusterServicesAnswer(): Promise<string | undefined> {
  try {
    await admin((c) => c.query('SELECT 1'));
  } catch (error) {
    return `PostgreSQL at ${POSTGRES_ADMIN_URL} does not answer: ${(error as Error).message}`;
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    return `Redis at ${REDIS_URL} does not answer: ${(error as Error).message}`;
  } finally {
    redis.disconnect();
  }
  if (!findNginx()) return 'nginx is not on PATH (apt-get install -y nginx; it lives in /usr/sbin)';
  return undefined;
}

async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * nginx in the foreground on the committed gateway config (upstreams and listen rewritten
 * as the tests do), one worker process with room for 8,192 connections, access log to a file.
 */
async function startNginx(upstreams: string[]): Promise<{ url: string; workerPid?: number; stop: () => Promise<void> }> {
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx is not on PATH');
  const port = await freePort();
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-nginx-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'gateway.conf'), renderGatewayConf(readFileSync(GATEWAY_CONF, 'utf8'), { upstreams, listen: `127.0.0.1:${port}` }));
  writeFileSync(join(dir, 'nginx.conf'), mainConf(dir, 8192));
  const stdoutFd = openSync(join(dir, 'access.log'), 'a');
  const child = spawn(nginx, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', stdoutFd, 'pipe'] });
  closeSync(stdoutFd);
  // Not one of processes.ts's children: killed here if the bench exits without stopping it.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}`);
    try {
      await (await fetch(`${url}/readyz`)).arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not answer on ${url}: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  let stopped = false;
  // The master forks one worker: that is where the proxying CPU goes.
  let workerPid: number | undefined;
  try {
    workerPid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]) || undefined;
  } catch {
    workerPid = undefined;
  }
  return {
    url,
    workerPid,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
