import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { EventBusOptions } from '../../src/pubsub/event-bus.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: Array<{ message: string; path?: unknown[]; extensions?: Record<string, any> }> };
}

export interface TestGateway {
  app: App;
  url: string;
  /** DATABASE_URL of the gateway's own database (dropped by `close`). */
  databaseUrl: string;
  /** SQL on the gateway's database through a connection of the test's own (TestDatabase.query). */
  query: TestDatabase['query'];
  /** Every log line the gateway wrote, parsed. */
  logs: Array<Record<string, any>>;
  gql<T = any>(query: string, variables?: Record<string, unknown>, init?: { headers?: Record<string, string>; body?: string }): Promise<GraphQLResponse<T>>;
  /** Rows in the prediction table, read through a connection of the test's own. */
  countRows(): Promise<number>;
  close(): Promise<void>;
}

export interface StartOptions {
  modelRepository?: string;
  onQuery?: (sql: string) => void;
  /** Wait for every model to be READY or FAILED before resolving. @default true */
  waitForModels?: boolean;
  /** Extra environment for loadConfig (e.g. MAX_GENERATIONS). */
  env?: Record<string, string>;
  /** Subscriber queue limits. */
  eventBus?: EventBusOptions;
}

/** The real gateway on an ephemeral port, on a fresh database (test-database.ts: SQLite file or PostgreSQL database). */
export async function startGateway(options: StartOptions = {}): Promise<TestGateway> {
  const database = await createTestDatabase();
  const config = loadConfig({
    PORT: '0',
    DATABASE_URL: database.url,
    MODEL_REPOSITORY: options.modelRepository ?? 'models',
    LOG_LEVEL: 'info',
    // No background drift checks unless a test asks (they would add SELECTs to statement counts).
    DRIFT_CHECK_INTERVAL_MS: '0',
    ...options.env,
  });
  const logs: Array<Record<string, any>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const app = await createApp(config, { log: pino({ level: 'info' }, sink), onQuery: options.onQuery, eventBus: options.eventBus });
  if (options.waitForModels !== false) await app.modelsLoaded;
  const server: Server = createServer(app.handle);
  app.attachWebSocket(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    app,
    url,
    databaseUrl: database.url,
    query: database.query,
    logs,
    async gql(query, variables, init = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...init.headers },
        body: init.body ?? JSON.stringify({ query, variables }),
      });
      return { status: res.status, headers: res.headers, body: await res.json() };
    },
    countRows: () => database.value('SELECT COUNT(*) FROM "Prediction"'),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
      await database.drop();
    },
  };
}
