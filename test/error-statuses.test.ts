import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscribeRawSse, subscribeWs, wsClient } from './helpers/clients.ts';
import { startGateway, type TestGateway } from './helpers/gateway.ts';
import { writeGptModel } from './helpers/gpt-model.ts';
import { watchGenerations } from './helpers/observe.ts';

// The status line of each error over the real transports: HTTP (both media types), SSE, and
// WebSocket, which has none (the code is in the payload, nothing else is added).
const GENERATE_MUT = `mutation($input: GenerateInput!) { generate(input: $input) { text } }`;
const GENERATE_SUB = `subscription($input: GenerateInput!) { generate(input: $input) { token } }`;
const input = { model: 'fortune', prompt: 'The ', maxTokens: 3, seed: 1 };
const TOO_MANY = { code: 'TOO_MANY_REQUESTS', limit: 1 };

let gw: TestGateway;
let ws: Client;
beforeAll(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'statuses-repo-'));
  cpSync(join('models', 'fortune'), join(repo, 'fortune'), { recursive: true });
  cpSync(join('models', 'iris'), join(repo, 'iris'), { recursive: true });
  mkdirSync(join(repo, 'broken', '1'), { recursive: true });
  writeFileSync(join(repo, 'broken', '1', 'model.onnx'), 'this is not an ONNX file');
  // Generators whose first decoding step fails (logits wider than the vocabulary): one per transport.
  for (const name of ['wide_sse', 'wide_ws']) writeGptModel(repo, name, { vocab: 24, layers: 1, heads: 2, headDim: 4, seed: 5, dynamicVocab: true }, 20);
  gw = await startGateway({ modelRepository: repo, env: { MAX_GENERATIONS: '1' } });
  ws = wsClient(gw.url);
});
afterAll(async () => {
  await ws.dispose();
  await gw.close();
});

async function post(query: string, variables: unknown, accept = 'application/graphql-response+json') {
  const res = await fetch(`${gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: JSON.stringify({ query, variables }) });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/**
 * Takes the only generation slot and keeps it: the slot is taken when the subscription
 * starts, and an in-memory SSE response nobody reads never starts decoding. `release`
 * reads its first ping and cancels it, which returns the stream and frees the slot.
 */
async function holdTheSlot() {
  const server = watchGenerations(gw.app.generationService, () => 0);
  const res = await gw.app.yoga.fetch('http://gateway/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query: GENERATE_SUB, variables: { input: { ...input, maxTokens: 512 } } }),
  });
  expect(res.status).toBe(200);
  expect(gw.app.generationService.active).toBe(1);
  server.restore();
  return {
    async release() {
      const reader = res.body!.getReader();
      await reader.read();
      await reader.cancel();
      await server.streams[0]!.released;
      expect(gw.app.generationService.active).toBe(0);
    },
  };
}

describe('TOO_MANY_REQUESTS', () => {
  it('is 429 with Retry-After over HTTP (either media type) and SSE; over WebSocket the payload has the code', async () => {
    const slot = await holdTheSlot();
    try {
      for (const accept of ['application/graphql-response+json', 'application/json']) {
        const res = await post(GENERATE_MUT, { input }, accept);
        expect(res.status).toBe(429);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(res.body.data).toBeNull();
        expect(res.body.errors[0].extensions).toEqual(TOO_MANY);
      }

      const sse = subscribeRawSse(gw.url, GENERATE_SUB, { input });
      const answer = await sse.connected;
      expect([answer.status, answer.headers.get('retry-after')]).toEqual([429, '1']);
      await sse.done;
      expect(sse.events).toEqual([{ errors: [expect.objectContaining({ extensions: TOO_MANY })] }]);

      const sub = subscribeWs(ws, GENERATE_SUB, { input });
      await sub.done;
      expect(sub.events).toEqual([{ errors: [expect.objectContaining({ extensions: TOO_MANY })] }]);
    } finally {
      await slot.release();
    }
    const again = await post(GENERATE_MUT, { input });
    expect(again.status).toBe(200);
    expect(again.body.data.generate.text).toHaveLength(3);
  });
});

describe('other codes', () => {
  it('MODEL_NOT_READY is 503; MODEL_NOT_FOUND and BAD_USER_INPUT in arguments stay 200; bad variable values are 400', async () => {
    const predict = `mutation($input: PredictInput!) { predict(input: $input) { id } }`;
    const notReady = await post(predict, { input: { model: 'broken', features: [1] } });
    expect(notReady.status).toBe(503);
    expect(notReady.headers.get('retry-after')).toBeNull();
    expect(notReady.body.errors[0].extensions).toEqual({ code: 'MODEL_NOT_READY', model: 'broken', version: 1, status: 'FAILED' });

    const notFound = await post(predict, { input: { model: 'nope', features: [1] } });
    expect(notFound.status).toBe(200);
    expect(notFound.body.errors[0].extensions).toEqual({ code: 'MODEL_NOT_FOUND', model: 'nope' });

    const badArgument = await post(predict, { input: { model: 'iris', features: [1, 2, 3] } });
    expect(badArgument.status).toBe(200);
    expect(badArgument.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');

    const badVariable = await post(predict, { input: { model: 'iris', features: ['x'] } });
    expect(badVariable.status).toBe(400);
    expect(badVariable.body.errors[0].extensions).toEqual({
      code: 'BAD_USER_INPUT',
      issues: [{ path: ['input', 'features', 0], message: 'Float cannot represent non numeric value: "x"' }],
    });
  });

  it('an operation over a GraphQL Armor limit is a validation error: 400 for graphql-response+json, 200 for application/json', async () => {
    const aliases = `{ ${Array.from({ length: 51 }, (_, i) => `m${i}: models { name }`).join(' ')} }`;
    for (const [accept, status] of [['application/graphql-response+json', 400], ['application/json', 200]] as const) {
      const res = await post(aliases, undefined, accept);
      expect(res.status).toBe(status);
      expect(res.body).toEqual({ errors: [{ message: 'Aliases limit of 50 exceeded, found 51.', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] });
    }
  });
});

describe('a GatewayError from a running stream', () => {
  it('reaches SSE and WebSocket clients as an error event with its code (the status line was 200)', async () => {
    const failed = (model: string) => ({ code: 'MODEL_NOT_READY', model, version: 1, status: 'FAILED' });
    const wide = (model: string) => ({ input: { model, prompt: 'abc', maxTokens: 5 } });
    const sse = subscribeRawSse(gw.url, GENERATE_SUB, wide('wide_sse'));
    expect((await sse.connected).status).toBe(200);
    await sse.done;
    expect(sse.events).toEqual([{ errors: [expect.objectContaining({ extensions: failed('wide_sse') })] }]);

    const sub = subscribeWs(ws, GENERATE_SUB, wide('wide_ws'));
    await sub.done;
    expect(sub.events).toEqual([{ errors: [expect.objectContaining({ extensions: failed('wide_ws') })] }]);
  });
});

describe('SERVICE_UNAVAILABLE', () => {
  // Last: it begins the shutdown of the generation service.
  it('is 503 over HTTP and SSE once shutdown has begun; over WebSocket the payload has the code', async () => {
    await gw.app.generationService.close();
    const res = await post(GENERATE_MUT, { input });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(res.body.errors[0]).toMatchObject({ message: 'The server is shutting down; retry on another instance', extensions: { code: 'SERVICE_UNAVAILABLE' } });

    const sse = subscribeRawSse(gw.url, GENERATE_SUB, { input });
    expect((await sse.connected).status).toBe(503);
    await sse.done;
    expect(sse.events[0]!.errors![0]!.extensions).toEqual({ code: 'SERVICE_UNAVAILABLE' });

    const sub = subscribeWs(ws, GENERATE_SUB, { input });
    await sub.done;
    expect(sub.events[0]!.errors![0]!.extensions).toEqual({ code: 'SERVICE_UNAVAILABLE' });
  });
});
