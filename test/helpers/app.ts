import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { GraphQLResponse } from './gateway.ts';
import { createTestDatabase, type TestDatabase } from './test-database.ts';

/** The gateway without a port: GraphQL through Yoga's in-memory `fetch`. */
export interface TestApp {
  app: App;
  /** The app's database: its own unless one was passed in. */
  database: TestDatabase;
  logs: Array<Record<string, any>>;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

/**
 * `database`: one the test created (createTestDatabase) to share between apps, e.g. across
 * a restart; the test drops it. Without it the app gets a fresh one, dropped by `close`.
 */
export async function createTestApp(options: { modelRepository?: string; env?: Record<string, string>; database?: TestDatabase } = {}): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase());
  // No background drift checks unless a test asks (they would add SELECTs to statement counts).
  const config = loadConfig({ DATABASE_URL: database.url, MODEL_REPOSITORY: options.modelRepository ?? 'models', DRIFT_CHECK_INTERVAL_MS: '0', ...options.env });
  const logs: Array<Record<string, any>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const app = await createApp(config, { log: pino({ level: 'info' }, sink) });
  await app.modelsLoaded;
  return {
    app,
    database,
    logs,
    async gql(query, variables) {
      const res = await app.yoga.fetch('http://gateway/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify({ query, variables }),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as GraphQLResponse['body'] };
    },
    async close() {
      await app.close();
      if (!options.database) await database.drop();
    },
  };
}
