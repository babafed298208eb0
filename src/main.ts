import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { createLogger } from './observability/logger.ts';

let config: Config;
try {
  config = loadConfig(process.env, '.env');
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}

const log = createLogger(config.logLevel);
const app = await createApp(config, { log });
const server = createServer(app.handle);
/** `host:port` as a URL authority (IPv6 addresses in brackets). */
const authority = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
server.on('error', (error: NodeJS.ErrnoException) => {
  const why = error.code === 'EADDRINUSE' ? 'the address is already in use' : error.code === 'EADDRNOTAVAIL' ? 'no such local address' : error.message;
  log.fatal({ code: error.code, host: config.host, port: config.port }, `cannot listen on ${authority(config.host, config.port)}: ${why}`);
  process.exit(1);
});
server.listen(config.port, config.host, () => {
  // Attached once listening: a WebSocket server on a server that failed to listen adds its own noise.
  app.attachWebSocket(server);
  const { port } = server.address() as AddressInfo;
  log.info({ host: config.host, port, url: `http://${authority(config.host, port)}/graphql` }, 'listening');
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
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
