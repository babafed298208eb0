import cluster from 'node:cluster';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app.ts';
import { runPrimary, WORKER_SLOT } from './cluster/primary.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger, endLog, type Logger } from './observability/logger.ts';
import { openClusterEventTarget } from './pubsub/cluster-event-target.ts';
import { answerClientErrors, authority, cannotListen } from './transport/listen.ts';

let config: Config;
let log: Logger;
try {
  config = loadConfig(process.env, '.env');
  log = createLogger(config.logLevel, 'stdout', config.logFormat);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}

/**
 * This process's slot when our own primary forked it (WORKERS > 1); undefined in a single
 * process, and in a cluster worker of another supervisor (pm2's cluster mode), whose
 * primary would not relay our events.
 */
const workerSlot = cluster.isWorker && process.env[WORKER_SLOT] ? Number(process.env[WORKER_SLOT]) : undefined;

// Once per start (not per worker): an open gateway should be a choice someone saw.
if (cluster.isPrimary && config.authMode === 'off') {
  log.warn({ authMode: 'off' }, 'AUTH_MODE=off: no API key is asked for; every caller may predict and read every prediction and job (set AUTH_MODE=required)');
}

if (cluster.isPrimary && config.workers > 1) await runPrimary(config, log);
else await serve(config, workerSlot === undefined ? log : log.child({ worker: workerSlot }));

/** One gateway process: alone, or one of the primary's workers. */
async function serve(config: Config, log: Logger): Promise<void> {
  const app = await createApp(config, {
    log,
    // Resuming the jobs left RUNNING is safe in one process only: slot 1's.
    batchWorker: workerSlot === undefined || workerSlot === 1,
    // Without Redis to elect one, the outbox sweeper runs in slot 1 too.
    outboxSweeper: workerSlot === undefined || workerSlot === 1 || config.redisUrl !== undefined,
    // Workers without Redis hear each other's events through the primary.
    eventBus: workerSlot !== undefined && !config.redisUrl ? { eventTarget: openClusterEventTarget() } : undefined,
    // A worker's /metrics adds up every worker's, through the primary.
    metricsThroughPrimary: workerSlot !== undefined,
  });
  const server = createServer(app.handle);
  answerClientErrors(server);
  server.on('error', (error: NodeJS.ErrnoException) => {
    log.fatal({ code: error.code, host: config.host, port: config.port }, cannotListen(error, config.host, config.port));
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    // Attached once listening: a WebSocket server on a server that failed to listen adds its own noise.
    app.attachWebSocket(server);
    const { port } = server.address() as AddressInfo;
    // A worker's primary says `listening` once for all of them.
    if (workerSlot === undefined) log.info({ host: config.host, port, url: `http://${authority(config.host, port)}/graphql` }, 'listening');
  });
  void app.modelsLoaded.then(() => {
    const versions = app.models.list().flatMap((m) => m.versions);
    log.info(
      { ready: versions.filter((v) => v.status === 'READY').length, failed: versions.filter((v) => v.status === 'FAILED').length },
      'models loaded',
    );
  });

  /**
   * Graceful shutdown, in order: stop accepting; end generations (CANCELLED) and wait
   * for queries and mutations in flight on every transport; close WebSockets; wait for
   * HTTP responses; commit pending history rows; release sessions and the database;
   * exit 0. If that takes longer than SHUTDOWN_TIMEOUT_MS, log what is abandoned and
   * exit 1 rather than hang (a stalled client can hold a socket open indefinitely).
   */
  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: finishing requests in flight');
    setTimeout(() => {
      log.error({ abandoned: app.inFlight(), timeoutMs: config.shutdownTimeoutMs }, 'shutdown deadline passed: abandoning work in flight');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    // close() stops accepting and resolves when every connection has ended; idle keep-alive
    // connections are closed now, busy ones by the sweep once their response is out.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    await app.drain();
    await closed;
    clearInterval(sweep);
    await app.close();
    log.info('stopped');
    // The log is asynchronous: its last lines go out, in order, before the process exits.
    await endLog(log);
    process.exit(0);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
