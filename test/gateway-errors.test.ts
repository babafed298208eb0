import { Writable } from 'node:stream';
import { createSchema, createYoga } from 'graphql-yoga';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphQLError } from 'graphql';
import { BadUserInputError, GatewayError, ModelNotFoundError, ModelNotReadyError, PayloadTooLargeError, ServiceUnavailableError, TooManyRequestsError } from '../src/errors.ts';
import { fallbackMasking, useErrorMasking } from '../src/observability/error-masking.ts';
import { useGatewayErrors } from '../src/observability/use-gateway-errors.ts';

// The plugins of app.ts, in its order, around a schema whose fields throw on demand: the
// mapping rules that the gateway's own schema cannot all reach (partial data, errors outside execution).
const logs: Array<Record<string, any>> = [];
const log = pino(
  { level: 'info' },
  new Writable({ write: (chunk, _e, done) => (logs.push(...String(chunk).split('\n').filter(Boolean).map((l) => JSON.parse(l))), done()) }),
);
const impostor = () => Object.assign(new Error('secret detail'), { name: 'GraphQLError' });
const yoga = createYoga({
  logging: false,
  maskedErrors: fallbackMasking(log),
  context: ({ request }) => {
    if (request.headers.get('x-refuse')) throw new ServiceUnavailableError();
    return { requestId: 'req-1' };
  },
  plugins: [useErrorMasking(log), useGatewayErrors()],
  schema: createSchema({
    typeDefs: /* GraphQL */ `
      type Query {
        ok: String!
        busy: String!
        bad: String!
        missing: String!
        maybeBusy: String
        impostor: String!
        count(n: Int!): Int!
      }
      type Subscription { busy: String! }
    `,
    resolvers: {
      Query: {
        ok: () => 'ok',
        busy: () => Promise.reject(new TooManyRequestsError('generations', 2)),
        bad: () => Promise.reject(new BadUserInputError([{ path: ['input', 'x'], message: 'too big' }])),
        missing: () => Promise.reject(new ModelNotFoundError('nope', 3)),
        maybeBusy: () => Promise.reject(new TooManyRequestsError('generations', 2)),
        impostor: () => Promise.reject(impostor()),
        count: (_root: unknown, { n }: { n: number }) => n,
      },
      Subscription: {
        busy: {
          subscribe: () => {
            throw new TooManyRequestsError('generations', 2);
          },
        },
      },
    },
  }),
});
afterAll(() => yoga.dispose());

async function post(query: string, options: { accept?: string; variables?: unknown; headers?: Record<string, string> } = {}) {
  const res = await yoga.fetch('http://yoga/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: options.accept ?? 'application/graphql-response+json', ...options.headers },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: res.headers.get('content-type')!.includes('json') ? JSON.parse(text) : undefined };
}

describe('the error classes', () => {
  it('are plain Errors (no GraphQL in them) with a name, a code, the HTTP status they mean and their details', () => {
    const errors = [
      new BadUserInputError([{ path: ['input', 'features', 3], message: 'must be from 0 to 5, got 99' }]),
      new ModelNotFoundError('iris', 7),
      new ModelNotReadyError('iris', 1, 'LOADING'),
      new TooManyRequestsError('generations', 2),
      new ServiceUnavailableError(),
      new PayloadTooLargeError(4096),
    ];
    expect(errors.map((e) => [e instanceof GatewayError, e instanceof GraphQLError, e.name, e.code, e.httpStatus, e.details, e.retryAfterSeconds])).toEqual([
      [true, false, 'BadUserInputError', 'BAD_USER_INPUT', 400, { issues: [{ path: ['input', 'features', 3], message: 'must be from 0 to 5, got 99' }] }, undefined],
      [true, false, 'ModelNotFoundError', 'MODEL_NOT_FOUND', 404, { model: 'iris', version: 7 }, undefined],
      [true, false, 'ModelNotReadyError', 'MODEL_NOT_READY', 503, { model: 'iris', version: 1, status: 'LOADING' }, undefined],
      [true, false, 'TooManyRequestsError', 'TOO_MANY_REQUESTS', 429, { limit: 2 }, 1],
      [true, false, 'ServiceUnavailableError', 'SERVICE_UNAVAILABLE', 503, {}, undefined],
      [true, false, 'PayloadTooLargeError', 'PAYLOAD_TOO_LARGE', 413, {}, undefined],
    ]);
    expect(errors[0]!.message).toBe('Invalid input: input.features[3]: must be from 0 to 5, got 99');
    expect(String(errors[1])).toBe('ModelNotFoundError: Model `iris` has no version 7');
  });
});

describe('a GatewayError thrown in a resolver', () => {
  it('gets its code and details, and a retry-later status on the status line with Retry-After, removed from the body', async () => {
    const res = await post('{ busy }');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body).toEqual({
      data: null,
      errors: [
        {
          message: 'Too many generations at once (limit 2); retry later',
          locations: [{ line: 1, column: 3 }],
          path: ['busy'],
          extensions: { code: 'TOO_MANY_REQUESTS', limit: 2 },
        },
      ],
    });
  });

  it('answers 200 when the response still holds data (a partial response), for either media type', async () => {
    for (const accept of ['application/graphql-response+json', 'application/json']) {
      const res = await post('{ ok maybeBusy }', { accept });
      expect(res.status).toBe(200);
      expect(res.headers.get('retry-after')).toBeNull();
      expect(res.body.data).toEqual({ ok: 'ok', maybeBusy: null });
      expect(res.body.errors[0].extensions).toEqual({ code: 'TOO_MANY_REQUESTS', limit: 2 });
    }
  });

  it('uses the same status for application/json clients', async () => {
    const res = await post('{ busy }', { accept: 'application/json' });
    expect(res.status).toBe(429);
    expect(res.body.errors[0].extensions).toEqual({ code: 'TOO_MANY_REQUESTS', limit: 2 });
  });

  it('keeps 200 for errors about the request itself (BAD_USER_INPUT, MODEL_NOT_FOUND)', async () => {
    const bad = await post('{ bad }');
    expect(bad.status).toBe(200);
    expect(bad.body.errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', issues: [{ path: ['input', 'x'], message: 'too big' }] });
    const missing = await post('{ missing }');
    expect(missing.status).toBe(200);
    expect(missing.body.errors[0]).toMatchObject({ message: 'Model `nope` has no version 3', extensions: { code: 'MODEL_NOT_FOUND', model: 'nope', version: 3 } });
  });

  it('refusing a subscription over SSE: the status line says so, the stream carries the error', async () => {
    const res = await post('subscription { busy }', { accept: 'text/event-stream' });
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const data = /^event: next\ndata: (.*)$/m.exec(res.text)![1]!;
    expect(JSON.parse(data).errors[0].extensions).toEqual({ code: 'TOO_MANY_REQUESTS', limit: 2 });
  });

  it('outside execution (context creation) too', async () => {
    const res = await post('{ ok }', { headers: { 'x-refuse': '1' } });
    expect(res.status).toBe(503);
    expect(res.body.errors).toEqual([{ message: 'The server is shutting down; retry on another instance', extensions: { code: 'SERVICE_UNAVAILABLE' } }]);
  });
});

describe('a bad variable value', () => {
  it('is refused by graphql-js, gets BAD_USER_INPUT with its issue and keeps status 400', async () => {
    const res = await post('query($n: Int!) { count(n: $n) }', { variables: { n: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toEqual({
      code: 'BAD_USER_INPUT',
      issues: [{ path: ['n'], message: 'got invalid value "x"; Int cannot represent non-integer value: "x"' }],
    });
  });

});

describe('masking', () => {
  it('decides by class, not name: an Error named "GraphQLError" is masked and logged', async () => {
    const res = await post('{ impostor }');
    expect(res.body.errors).toEqual([
      { message: 'Unexpected error.', locations: [{ line: 1, column: 3 }], path: ['impostor'], extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: 'req-1' } },
    ]);
    expect(res.text).not.toContain('secret');
    expect(logs.find((l) => l.msg === 'unexpected error')?.err.message).toBe('secret detail');
  });
});
