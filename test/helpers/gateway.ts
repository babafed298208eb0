import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { EventBusOptions } from '../../src/pubsub/event-bus.ts';

export interface GraphQLResponse<T = any> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: Array<{ message: string; path?: unknown[]; extensions?: Record<string, any> }> };
}

export interface TestGateway {
  app: App;
  url: string;
  dbFile: string;
  /** Every log line the gateway wrote, parsed. */
  logs: Array<Record<string, any>>;
  gql<T = any>(query: string, variables?: Record<string, unknown>, init?: { headers?: Record<string, string>; body?: string }): Promise<GraphQLResponse<T>>;
  /** Rows in the prediction table, read through a separate SQLite connection. */
  countRows(): number;
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

/** The real gateway on an ephemeral port, with a fresh SQLite file in a temp folder. */
export async function startGateway(options: StartOptions = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-test-'));
  const dbFile = join(dir, 'history.db');
  const config = loadConfig({
    PORT: '0',
    DATABASE_URL: `file:${dbFile}`,
    MODEL_REPOSITORY: options.modelRepository ?? 'models',
    LOG_LEVEL: 'info',
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
    dbFile,
    logs,
    async gql(query, variables, init = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...init.headers },
        body: init.body ?? JSON.stringify({ query, variables }),
      });
      return { status: res.status, headers: res.headers, body: await res.json() };
    },
    countRows() {
      const db = new Database(dbFile, { readonly: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM "Prediction"').get() as { n: number }).n;
      } finally {
        db.close();
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
    },
  };
}
