import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const PREDICT = 'mutation Classify($f: [Float!]) { predict(input: { model: "iris", features: $f }) { label } }';
const MODELS = 'query Models { models { name } }';
const GENERATE = 'subscription Generate { generate(input: { model: "fortune", prompt: "The ", maxTokens: 3, seed: 1 }) { token done } }';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ids = { predict: sha256(PREDICT), models: sha256(MODELS), generate: sha256(GENERATE) };
const apollo = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

let gw: TestGateway;
/** ONNX runs so far, read from the repository (a GraphQL query would be refused here). */
const runs = () => gw.app.models.list().flatMap((m) => m.versions).reduce((n, v) => n + (v.served?.stats.runs ?? 0), 0);
/** The counts a refusal must leave as they were. */
const work = async () => ({ runs: runs(), rows: await gw.countRows() });

beforeAll(async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'persisted-')), 'operations.json');
  writeFileSync(file, JSON.stringify({ [ids.predict]: PREDICT, [ids.models]: MODELS, [ids.generate]: GENERATE }));
  gw = await startGateway({ env: { PERSISTED_OPERATIONS: file } });
});
afterAll(() => gw?.close());

const post = (body: unknown, accept = 'application/graphql-response+json') =>
  fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: JSON.stringify(body) });

describe('PERSISTED_OPERATIONS over HTTP', () => {
  it("runs a listed operation named by `documentId` or by Apollo's extensions.persistedQuery.sha256Hash, with variables", async () => {
    const byDocumentId = await post({ documentId: ids.predict, variables: { f: [5.1, 3.5, 1.4, 0.2] } });
    expect(byDocumentId.status).toBe(200);
    expect(await byDocumentId.json()).toEqual({ data: { predict: { label: 'setosa' } } });
    const byHash = await post({ extensions: apollo(ids.predict), variables: { f: [6.7, 3.0, 5.2, 2.3] } });
    expect(await byHash.json()).toEqual({ data: { predict: { label: 'virginica' } } });
  });

  it('runs a listed query over GET, with the id in the URL', async () => {
    const res = await fetch(`${gw.url}/graphql?extensions=${encodeURIComponent(JSON.stringify(apollo(ids.models)))}`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: { models: unknown[] } }).data.models.length).toBeGreaterThan(0);
  });

  it('refuses any document sent as `query`, listed or not, with 400 PERSISTED_QUERY_ONLY, running and storing nothing', async () => {
    const before = await work();
    for (const body of [{ query: PREDICT, variables: { f: [5.1, 3.5, 1.4, 0.2] } }, { query: '{ __schema { types { name } } }' }, { query: PREDICT, extensions: apollo(ids.predict) }]) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({
        errors: [{ message: 'Only persisted operations run here: send `documentId` (or `extensions.persistedQuery.sha256Hash`) instead of `query`', extensions: { code: 'PERSISTED_QUERY_ONLY' } }],
      });
    }
    expect(await work()).toEqual(before);
  });

  it('refuses an unknown id with 400 PERSISTED_QUERY_NOT_FOUND', async () => {
    const res = await post({ documentId: sha256('mutation { predict(input: { model: "iris", features: [1, 2, 3, 4] }) { id } }') });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: Array<{ message: string; extensions: unknown }> };
    expect(body.errors[0]!.extensions).toEqual({ code: 'PERSISTED_QUERY_NOT_FOUND' });
    expect(body.errors[0]!.message).toMatch(/^No persisted operation has the id `[0-9a-f]{64}`$/);
  });

  it('streams a listed subscription over SSE', async () => {
    const res = await post({ documentId: ids.generate }, 'text/event-stream');
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/"done":true/);
  });
});

describe('PERSISTED_OPERATIONS over WebSocket', () => {
  it('runs a listed subscription named by its hash (with an empty `query`, which graphql-ws requires)', async () => {
    const client = wsClient(gw.url);
    const events: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      client.subscribe({ query: '', extensions: apollo(ids.generate) }, { next: (e) => events.push(e), error: reject, complete: resolve });
    });
    await client.dispose();
    expect(events.at(-1)).toMatchObject({ data: { generate: { done: true } } });
  });

  it('refuses an unlisted document with PERSISTED_QUERY_ONLY (no `http` in the body), running and storing nothing', async () => {
    const before = await work();
    const client = wsClient(gw.url);
    const sub = subscribeWs(client, 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }');
    await sub.done;
    await client.dispose();
    expect(sub.events).toEqual([{ errors: [{ message: expect.stringMatching(/^Only persisted operations run here/), extensions: { code: 'PERSISTED_QUERY_ONLY' } }] }]);
    expect(await work()).toEqual(before);
  });
});
