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
app.attachWebSocket(server);
server.listen(config.port, config.host, () => {
  const { port } = server.address() as AddressInfo;
  log.info({ host: config.host, port, url: `http://${config.host}:${port}/graphql` }, 'listening');
});
void app.modelsLoaded.then(() => {
  const versions = app.models.list().flatMap((m) => m.versions);
  log.info(
    { ready: versions.filter((v) => v.status === 'READY').length, failed: versions.filter((v) => v.status === 'FAILED').length },
    'models loaded',
  );
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: finishing requests in flight');
  const force = setTimeout(() => {
    log.warn('shutdown timeout: closing remaining connections');
    server.closeAllConnections();
  }, config.shutdownTimeoutMs);
  force.unref();
  // close() stops accepting and resolves when every connection has ended;
  // idle keep-alive connections are closed now, busy ones after their response.
  // Keep-alive connections that finish their last response meanwhile are closed by the sweep.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  // Running generations end with a CANCELLED event (and are stored), so their streams finish.
  await app.drain();
  await closed;
  clearInterval(sweep);
  await app.close();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
