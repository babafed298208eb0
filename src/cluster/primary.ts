import cluster, { type Worker } from 'node:cluster';
import { createServer, type AddressInfo } from 'node:net';
import type { Config } from '../config.ts';
import type { Logger } from '../observability/logger.ts';
import { relayClusterEvents } from '../pubsub/cluster-event-target.ts';
import { answerMetricsScrapes } from './cluster-metrics.ts';
import { authority, cannotListen } from '../transport/listen.ts';

/**
 * Environment variable the primary gives each worker: its slot, 1 to WORKERS. A replacement
 * takes the slot of the worker it replaces; slot 1 runs the batch worker.
 */
export const WORKER_SLOT = 'GATEWAY_WORKER_SLOT';

/** How long past SHUTDOWN_TIMEOUT_MS (each worker's own deadline) the primary waits before killing what is left. */
const SHUTDOWN_MARGIN_MS = 2000;
/** A worker that lived at least this long died of something other than a crash loop. */
const HEALTHY_UPTIME_MS = 10_000;
const FIRST_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * How long to wait before replacing a worker that died after `uptimeMs`: short after a
 * healthy run, doubling (to 30 s) while replacements keep dying young, so a worker that
 * cannot start is never re-forked in a tight loop.
 */
export function restartDelayMs(previousDelayMs: number | undefined, uptimeMs: number): number {
  if (previousDelayMs === undefined || uptimeMs >= HEALTHY_UPTIME_MS) return FIRST_RESTART_DELAY_MS;
  return Math.min(MAX_RESTART_DELAY_MS, previousDelayMs * 2);
}

/**
 * Binds the address once to check it and to fix the port: with PORT=0 every worker, and
 * every replacement, then listens on the same port, even after all workers have died
 * (node:cluster shares a port-0 listener only while some worker holds it).
 */
function reservePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => {
      const bound = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(bound));
    });
  });
}

interface Slot {
  worker?: Worker;
  forkedAt: number;
  restartDelayMs?: number;
  restartTimer?: NodeJS.Timeout;
}

/**
 * WORKERS > 1: this process forks that many gateway workers sharing one port (node:cluster
 * hands out connections round-robin), relays their events to each other (without Redis),
 * replaces a worker that dies, and on SIGTERM/SIGINT passes the signal on so each worker
 * shuts down gracefully. It exits 0 when all of them have exited 0; 1 if any did not, or if
 * some are still running SHUTDOWN_MARGIN_MS after their own deadline (they are killed).
 * A worker that exits before all have listened stops the start-up: exit 1.
 */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  let port: number;
  try {
    port = await reservePort(config.host, config.port);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    log.fatal({ code: e.code, host: config.host, port: config.port }, cannotListen(e, config.host, config.port));
    process.exit(1);
  }

  relayClusterEvents(cluster);
  if (config.metrics) answerMetricsScrapes(cluster);
  const slots = new Map<number, Slot>();
  const listened = new Set<number>();
  let started = false;
  let stopping = false;
  let failed = false;

  const live = () => [...slots.values()].flatMap((s) => (s.worker ? [s.worker] : []));

  const fork = (slot: number) => {
    const state = slots.get(slot) ?? { forkedAt: 0 };
    slots.set(slot, state);
    const worker = cluster.fork({ [WORKER_SLOT]: String(slot), PORT: String(port) });
    Object.assign(state, { worker, forkedAt: Date.now(), restartTimer: undefined });
    worker.on('listening', () => {
      if (started) {
        log.info({ worker: slot, pid: worker.process.pid }, 'replacement worker listening');
        return;
      }
      listened.add(slot);
      if (listened.size < config.workers) return;
      started = true;
      log.info({ host: config.host, port, url: `http://${authority(config.host, port)}/graphql`, workers: config.workers }, 'listening');
    });
    worker.on('exit', (code, signal) => {
      state.worker = undefined;
      const exit = { worker: slot, pid: worker.process.pid, code, signal };
      if (stopping) {
        if (code !== 0) failed = true;
        if (live().length === 0) finish();
        return;
      }
      if (!started) {
        log.error(exit, 'a worker exited during start-up: stopping');
        failed = true;
        void shutdown('SIGTERM');
        return;
      }
      state.restartDelayMs = restartDelayMs(state.restartDelayMs, Date.now() - state.forkedAt);
      log.error({ ...exit, restartInMs: state.restartDelayMs }, 'worker exited unexpectedly: starting a replacement');
      state.restartTimer = setTimeout(() => fork(slot), state.restartDelayMs);
    });
  };

  const finish = () => {
    if (failed) log.error('stopped: not every worker stopped cleanly');
    else log.info('stopped');
    process.exit(failed ? 1 : 0);
  };

  async function shutdown(signal: NodeJS.Signals): Promise<void> {
    if (stopping) return;
    stopping = true;
    for (const state of slots.values()) clearTimeout(state.restartTimer);
    const workers = live();
    log.info({ signal, workers: workers.length, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: every worker finishes its requests in flight');
    if (workers.length === 0) finish();
    // Each worker runs the single-process shutdown on this signal (and exits 1 past its own deadline).
    for (const worker of workers) worker.process.kill(signal);
    setTimeout(() => {
      const left = live();
      log.error({ workers: left.map((w) => w.process.pid), timeoutMs: config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS }, 'shutdown deadline passed: killing workers still running');
      for (const worker of left) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  for (let slot = 1; slot <= config.workers; slot++) fork(slot);
}
