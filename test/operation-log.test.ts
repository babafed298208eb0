import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { createSchema, createYoga } from 'graphql-yoga';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.ts';
import { createLogger } from '../src/observability/logger.ts';
import { useOperationLog } from '../src/observability/use-operation-log.ts';
import { subscribeSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { startGatewayProcess, type GatewayProcess } from './helpers/process.ts';

const PREDICT = `mutation Classify($input: PredictInput!) { predict(input: $input) { id label } }`;
const IRIS = { model: 'iris', features: [5.1, 3.5, 1.4, 0.2] };

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

/** The operation lines written for one request id. */
const linesOf = (requestId: string) => gw.logs.filter((l) => l.requestId === requestId && /^(graphql operation|subscription (started|ended))$/.test(l.msg));

/** Resolves once `predicate` holds (log lines of streams are written after the client has its last event). */
async function until(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !predicate(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(predicate()).toBe(true);
}

describe('one JSON log line per operation', () => {
  it('a successful HTTP mutation: request id (the incoming x-request-id, echoed), name, type, duration, model, version, rows', async () => {
    const res = await gw.gql(PREDICT, { input: IRIS }, { headers: { 'x-request-id': 'log-ok-1' } });
    expect(res.body.errors).toBeUndefined();
    expect(res.headers.get('x-request-id')).toBe('log-ok-1');
    const lines = linesOf('log-ok-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'graphql operation',
      requestId: 'log-ok-1',
      transport: 'http',
      operationName: 'Classify',
      operationType: 'mutation',
      fields: ['predict'],
      outcome: 'ok',
      model: 'iris',
      version: 1,
      rows: 1,
    });
    expect(lines[0]!.errorCode).toBeUndefined();
    expect(typeof lines[0]!.durationMs).toBe('number');
  });

  it('a request without x-request-id gets a generated one, in the header and on its line', async () => {
    const res = await gw.gql(`query Models { models { name } }`);
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(linesOf(id!)).toMatchObject([{ operationName: 'Models', operationType: 'query', outcome: 'ok', fields: ['models'] }]);
  });

  it('a failed operation carries the error code the client saw, and the model it asked for', async () => {
    const res = await gw.gql(PREDICT, { input: { model: 'nope', features: [1] } }, { headers: { 'x-request-id': 'log-fail-1' } });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('MODEL_NOT_FOUND');
    expect(linesOf('log-fail-1')).toMatchObject([{ outcome: 'error', errorCode: 'MODEL_NOT_FOUND', model: 'nope', operationName: 'Classify' }]);
  });

  it('operations refused before execution get a line too: parse failure, token limit, validation failure (cached or not), depth limit, cost limit (QUERY_TOO_COMPLEX)', async () => {
    await gw.gql(`mutation { predict(`, undefined, { headers: { 'x-request-id': 'log-parse' } });
    for (const id of ['log-invalid-1', 'log-invalid-2']) await gw.gql(`query Bad { nope }`, undefined, { headers: { 'x-request-id': id } });
    const many = `query Many { ${'__typename '.repeat(20_001)}}`;
    await gw.gql(many, undefined, { headers: { 'x-request-id': 'log-tokens' } });
    await gw.gql(`query Deep { ${'models { versions { model { '.repeat(8)}name${' } } }'.repeat(8)} }`, undefined, { headers: { 'x-request-id': 'log-deep' } });
    await gw.gql(`query Pages { batchJobs(first: 100) { edges { node { results(first: 1000) { edges { node { index } } } } } } }`, undefined, { headers: { 'x-request-id': 'log-cost' } });
    expect(linesOf('log-parse')).toMatchObject([{ outcome: 'error', errorCode: 'GRAPHQL_PARSE_FAILED' }]);
    expect(linesOf('log-invalid-1')).toMatchObject([{ outcome: 'error', errorCode: 'GRAPHQL_VALIDATION_FAILED', operationName: 'Bad', operationType: 'query' }]);
    expect(linesOf('log-invalid-2')).toMatchObject([{ outcome: 'error', errorCode: 'GRAPHQL_VALIDATION_FAILED', operationName: 'Bad' }]);
    expect(linesOf('log-tokens')).toMatchObject([{ outcome: 'error', errorCode: 'GRAPHQL_VALIDATION_FAILED', queryLength: many.length }]);
    expect(linesOf('log-deep')).toMatchObject([{ outcome: 'error', errorCode: 'GRAPHQL_VALIDATION_FAILED', operationName: 'Deep' }]);
    expect(linesOf('log-cost')).toMatchObject([{ outcome: 'error', errorCode: 'QUERY_TOO_COMPLEX', operationName: 'Pages', durationMs: expect.any(Number) }]);
  });

  it('over WebSocket: a mutation line, and a subscription start and end line with its event count and duration', async () => {
    const client = wsClient(gw.url);
    try {
      const sub = subscribeWs(client, `subscription Watch { predictionCreated(model: "iris") { id } }`);
      await until(() => gw.logs.some((l) => l.msg === 'subscription started' && l.operationName === 'Watch'));
      const started = gw.logs.find((l) => l.msg === 'subscription started' && l.operationName === 'Watch')!;
      expect(started).toMatchObject({ transport: 'ws', operationType: 'subscription', fields: ['predictionCreated'] });
      const predicted = subscribeWs(client, PREDICT, { input: IRIS });
      await predicted.done;
      await sub.waitFor(1);
      await gw.gql(PREDICT, { input: IRIS });
      await sub.waitFor(2);
      sub.unsubscribe();
      await until(() => linesOf(started.requestId).some((l) => l.msg === 'subscription ended'));
      const ended = linesOf(started.requestId).find((l) => l.msg === 'subscription ended')!;
      expect(ended).toMatchObject({ transport: 'ws', operationName: 'Watch', outcome: 'ok', events: 2 });
      expect(ended.durationMs).toBeGreaterThan(0);
      expect(gw.logs.filter((l) => l.msg === 'graphql operation' && l.transport === 'ws' && l.operationName === 'Classify')).toMatchObject([{ outcome: 'ok', model: 'iris', rows: 1 }]);
    } finally {
      await client.dispose();
    }
  });

  it('over SSE: a generation subscription ends with its events, model, version and tokens', async () => {
    const before = gw.logs.length;
    const sub = subscribeSse(gw.url, `subscription Write($input: GenerateInput!) { generate(input: $input) { token done } }`, {
      input: { model: 'fortune', prompt: 'The ', maxTokens: 3, seed: 1 },
    });
    await sub.done;
    await until(() => gw.logs.slice(before).some((l) => l.msg === 'subscription ended' && l.operationName === 'Write'));
    const lines = gw.logs.slice(before).filter((l) => l.operationName === 'Write');
    expect(lines.map((l) => l.msg)).toEqual(['subscription started', 'subscription ended']);
    expect(lines[1]).toMatchObject({ transport: 'sse', outcome: 'ok', events: sub.events.length, model: 'fortune', version: 1, tokens: 3 });
  });

  it('a subscription refused before its first event is one failed line', async () => {
    const client = wsClient(gw.url);
    try {
      const before = gw.logs.length;
      const sub = subscribeWs(client, `subscription Follow { batchJobProgress(id: "00000000-0000-7000-8000-000000000000") { id } }`);
      await sub.done;
      await until(() => gw.logs.slice(before).some((l) => l.operationName === 'Follow'));
      expect(gw.logs.slice(before).filter((l) => l.operationName === 'Follow')).toMatchObject([{ msg: 'graphql operation', outcome: 'error', errorCode: 'NOT_FOUND' }]);
    } finally {
      await client.dispose();
    }
  });
});

describe('the caller', () => {
  it("logs the API key's id from context.principal, never the key", async () => {
    const logs: Array<Record<string, any>> = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (logs.push(JSON.parse(String(chunk))), done()) }));
    const yoga = createYoga({
      logging: false,
      schema: createSchema({ typeDefs: 'type Query { ok: String! }', resolvers: { Query: { ok: () => 'ok' } } }),
      context: () => ({ requestId: 'r-1', principal: { keyId: 'key_42', key: 'gw_secret_value' } }),
      plugins: [useOperationLog(log)],
    });
    await yoga.fetch('http://yoga/graphql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ ok }' }) });
    expect(logs).toMatchObject([{ requestId: 'r-1', keyId: 'key_42', outcome: 'ok' }]);
    expect(JSON.stringify(logs)).not.toContain('gw_secret_value');
    await yoga.dispose();
  });
});

describe('the gateway process (src/main.ts)', () => {
  let child: GatewayProcess | undefined;
  afterAll(() => {
    child?.child.kill('SIGKILL');
  });

  it('writes its operation lines as JSON on stdout, with the request id the client sent', async () => {
    child = await startGatewayProcess({ MODEL_REPOSITORY: 'models', LOG_FORMAT: 'auto' });
    const res = await fetch(`${child.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'proc-1' },
      body: JSON.stringify({ query: 'query Health { models { name } }' }),
    });
    expect(res.headers.get('x-request-id')).toBe('proc-1');
    await res.text();
    // stdout is a pipe, not a terminal: JSON even with LOG_FORMAT=auto (startGatewayProcess parses every line).
    await until(() => child!.lines.some((l) => l.requestId === 'proc-1'));
    expect(child.lines.filter((l) => l.requestId === 'proc-1')).toMatchObject([{ msg: 'graphql operation', operationName: 'Health', outcome: 'ok', service: 'onnx-graphql-gateway' }]);
  });
});

const prettyInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
})();

describe('LOG_FORMAT', () => {
  it.skipIf(prettyInstalled)('pretty without pino-pretty installed is a configuration error naming the package', () => {
    expect(() => createLogger('info', 'stdout', 'pretty')).toThrow(ConfigError);
    expect(() => createLogger('info', 'stdout', 'pretty')).toThrow(/pino-pretty/);
  });
});
