/**
 * The read benchmark: the history query a dashboard would run (a page of 100 predictions with
 * nested model metadata), measured two ways:
 * - over HTTP under load against a running gateway (`readLoad`), and
 * - in-process, counting the SQL statements one such request sends (`countReadStatements`):
 *   the gateway promises a constant number whatever the page size (DataLoader, metadata in memory).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { runStep, type LoadStep } from './load.ts';

export const READ_QUERY =
  '{ predictions(first: 100) { edges { node { id label createdAt model { name kind versions { version status } } } } } }';

export const PREDICT_BODY = JSON.stringify({
  query: 'mutation($f:[Float!]!){predict(input:{model:"iris",features:$f}){id label}}',
  variables: { f: [5.1, 3.5, 1.4, 0.2] },
});

export interface ReadLoadResult extends LoadStep {
  /** Edges in one answer, checked before the load (must be 100). */
  edges: number;
  responseBytes: number;
}

/** Load the read query against `baseUrl` (a gateway holding at least 100 predictions). */
export async function readLoad(baseUrl: string, connections: number, durationS: number, warmupS: number): Promise<ReadLoadResult> {
  const body = JSON.stringify({ query: READ_QUERY });
  const res = await fetch(`${baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  const json = JSON.parse(text) as { data?: { predictions?: { edges?: unknown[] } }; errors?: unknown[] };
  if (res.status !== 200 || json.errors) throw new Error(`read query failed: HTTP ${res.status} ${text.slice(0, 300)}`);
  const edges = json.data?.predictions?.edges?.length ?? 0;
  if (edges < 100) throw new Error(`read benchmark needs at least 100 predictions stored, the page has ${edges}`);
  const step = await runStep({ url: `${baseUrl}/graphql`, body }, connections, durationS, warmupS);
  return { ...step, edges, responseBytes: Buffer.byteLength(text) };
}

export interface StatementCount {
  inserted: number;
  edges: number;
  statements: number;
  sql: string[];
}

/**
 * Builds the gateway in this process on a temporary SQLite file, stores `rows` predictions with
 * the predict mutation, then counts the statements the read query sends. Closes the app and
 * removes the file before returning.
 */
export async function countReadStatements(repoRoot: string, rows = 120): Promise<StatementCount> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-read-'));
  const statements: string[] = [];
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: `file:${join(dir, 'read.db')}`,
    MODEL_REPOSITORY: join(repoRoot, 'models'),
    LOG_LEVEL: 'warn',
    BATCHING: 'true',
  });
  // Its log goes to stderr: stdout is the bench's report.
  const log = pino({ level: 'warn' }, pino.destination(2));
  const app = await createApp(config, { log, onQuery: (sql) => statements.push(sql) });
  try {
    await app.modelsLoaded;
    const post = async <T>(body: string) => {
      const res = await app.yoga.fetch('http://yoga/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      if (res.status !== 200 || text.includes('"errors"')) throw new Error(`in-process request failed: HTTP ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text) as { data: T };
    };
    for (let i = 0; i < rows; i++) await post(PREDICT_BODY);
    // Let any statement logged after the last response arrive before counting from zero.
    await new Promise((r) => setTimeout(r, 50));
    statements.length = 0;
    const answer = await post<{ predictions: { edges: unknown[] } }>(JSON.stringify({ query: READ_QUERY }));
    await new Promise((r) => setTimeout(r, 50));
    return { inserted: rows, edges: answer.data.predictions.edges.length, statements: statements.length, sql: [...statements] };
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
