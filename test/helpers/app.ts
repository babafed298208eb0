import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { GraphQLResponse } from './gateway.ts';

/** The gateway without a port: GraphQL through Yoga's in-memory `fetch`. */
export interface TestApp {
  app: App;
  dbFile: string;
  logs: Array<Record<string, any>>;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

export async function createTestApp(options: { modelRepository?: string; env?: Record<string, string>; dbFile?: string } = {}): Promise<TestApp> {
  const dbFile = options.dbFile ?? join(mkdtempSync(join(tmpdir(), 'gateway-app-')), 'history.db');
  const config = loadConfig({ DATABASE_URL: `file:${dbFile}`, MODEL_REPOSITORY: options.modelRepository ?? 'models', ...options.env });
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
    dbFile,
    logs,
    async gql(query, variables) {
      const res = await app.yoga.fetch('http://gateway/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
        body: JSON.stringify({ query, variables }),
      });
      return { status: res.status, headers: res.headers, body: (await res.json()) as GraphQLResponse['body'] };
    },
    close: () => app.close(),
  };
}
