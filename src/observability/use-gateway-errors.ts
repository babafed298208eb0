import { isAsyncIterable } from '@envelop/core';
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { GatewayError } from '../errors.ts';

/**
 * The one place GraphQL errors get their `extensions.code` and HTTP status:
 *
 * - A GatewayError thrown while executing becomes a GraphQLError with
 *   `extensions: { code, ...details }`. Statuses that ask the client to retry later (429 and
 *   5xx: TOO_MANY_REQUESTS, SERVICE_UNAVAILABLE, MODEL_NOT_READY), and the refusals of the
 *   caller's API key (401 UNAUTHENTICATED, 403 FORBIDDEN: for clients and proxies that act on
 *   auth statuses) also get
 *   `extensions.http: { status, headers }`, which Yoga puts on the status line (the highest
 *   status when there are several) and removes from the body; only for HTTP requests (over
 *   WebSocket there is no status line) and only when the response holds no data (GraphQL
 *   over HTTP: a response with non-null `data` is 200). Errors about the request itself
 *   (400, 404) stay field errors with status 200, as GraphQL over HTTP recommends.
 * - graphql-js rejects bad variable values (a non-finite Float, a string for an Int, a
 *   missing required field) before any resolver runs, without a code: they get code
 *   BAD_USER_INPUT and `issues: [{ path, message }]` (the path starting at the variable's
 *   name), the shape of every other input error, and keep Yoga's status 400.
 * - GraphQL Armor's limit rejections become GRAPHQL_VALIDATION_FAILED with the status of any
 *   validation error (400 for `application/graphql-response+json`, 200 for `application/json`).
 *
 * Register it after useErrorMasking, which lets GatewayErrors through. GatewayErrors that escape
 * execution (context creation, a subscription's stream failing mid-way) reach Yoga's masking,
 * where fallbackMasking gives them the same shape through `gatewayGraphQLError`.
 */
export function useGatewayErrors(): Plugin {
  /** One result, or each event of a stream (whose status line was sent with its first byte). */
  const onResult =
    (overHttp: boolean) =>
    ({ result, setResult }: { result: ExecutionResult | AsyncIterable<unknown>; setResult: (result: ExecutionResult) => void }) => {
      if (isAsyncIterable(result)) return { onNext: (event: { result: ExecutionResult; setResult: (result: ExecutionResult) => void }) => mapResult(event.result, event.setResult, false) };
      mapResult(result, setResult, overHttp);
      return undefined;
    };
  return {
    onExecute: ({ args }) => ({ onExecuteDone: onResult(isHttp(args.contextValue)) }),
    onSubscribe: ({ args }) => ({ onSubscribeResult: onResult(isHttp(args.contextValue)) }),
    // Armor's limits reject during parsing and validation, outside execution.
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || isAsyncIterable(result) || !result.errors?.some(isLimitError)) return;
      setResult({ ...result, errors: result.errors.map((error) => (isLimitError(error) ? limitError(error) : error)) });
    },
  };
}

/** The GraphQLError a client sees for `error`, located like `located` (the executor's wrapper), if any. */
export function gatewayGraphQLError(error: GatewayError, located?: GraphQLError, statusLine = false): GraphQLError {
  const http = statusLine && (error.httpStatus === 401 || error.httpStatus === 403 || error.httpStatus === 429 || error.httpStatus >= 500)
    ? { status: error.httpStatus, ...(error.retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(error.retryAfterSeconds) } }) }
    : undefined;
  return new GraphQLError(error.message, {
    nodes: located?.nodes,
    source: located?.source,
    positions: located?.positions,
    path: located?.path,
    extensions: { code: error.code, ...error.details, ...(http ? { http } : {}) },
  });
}

/** Yoga's HTTP context has the fetch `Request`; graphql-ws operations (transport/websocket.ts) do not. */
export const isHttp = (context: unknown): boolean => typeof context === 'object' && context !== null && 'request' in context;

/** The GatewayError behind `error` (itself, or what the GraphQLErrors wrapping it were made from). */
export function gatewayErrorIn(error: unknown): GatewayError | undefined {
  for (let e = error; e instanceof Error; e = e instanceof GraphQLError ? e.originalError : undefined) if (e instanceof GatewayError) return e;
  return undefined;
}

function mapResult(result: ExecutionResult, setResult: (result: ExecutionResult) => void, overHttp: boolean): void {
  if (!result.errors?.length) return;
  const statusLine = overHttp && result.data == null;
  let changed = false;
  const errors = result.errors.map((error) => {
    const gateway = gatewayErrorIn(error.originalError);
    const mapped = gateway ? gatewayGraphQLError(gateway, error, statusLine) : result.data === undefined ? variableError(error) : undefined;
    if (!mapped) return error;
    changed = true;
    return mapped;
  });
  if (changed) setResult({ ...result, errors });
}

const VARIABLE_ERROR = /^Variable "\$(\w+)" got invalid value .*? at "([^"]+)"; (.*)$|^Variable "\$(\w+)" (.*)$/s;

/** `i.features[0]` → ['i', 'features', 0] */
function parseVariablePath(path: string): Array<string | number> {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

function variableError(error: GraphQLError): GraphQLError | undefined {
  const match = VARIABLE_ERROR.exec(error.message);
  if (!match || error.extensions['code']) return undefined;
  const path = match[1] ? parseVariablePath(match[2]!) : [match[4]!];
  const message = match[1] ? match[3]! : match[5]!;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    extensions: { ...error.extensions, code: 'BAD_USER_INPUT', issues: [{ path, message }] },
  });
}

// GraphQL Armor reports its limits as bare errors ("Syntax Error: Query depth limit of 20 exceeded, found 27.").
const LIMIT_ERROR = /^Syntax Error: (Query depth|Aliases|Token|Directives|Query Cost) limit/;
export const isLimitError = (error: { message: string; extensions?: Record<string, unknown> }) => !error.extensions?.['code'] && LIMIT_ERROR.test(error.message);

/** Shaped like Yoga's own validation errors (`spec: true`: 200 for `application/json` clients). */
const limitError = (error: GraphQLError) =>
  new GraphQLError(error.message.replace(/^Syntax Error: /, ''), {
    extensions: { ...error.extensions, code: 'GRAPHQL_VALIDATION_FAILED', http: { spec: true, status: 400 } },
  });

/**
 * A parse or validation error with the code HTTP clients see (Yoga's GRAPHQL_PARSE_FAILED or
 * GRAPHQL_VALIDATION_FAILED; Armor's limits as validation errors), for graphql-ws
 * (transport/websocket.ts), whose operations Yoga's HTTP handling never shapes. No `http`
 * entry: a WebSocket has no status line.
 */
export function requestError(error: GraphQLError, code: 'GRAPHQL_PARSE_FAILED' | 'GRAPHQL_VALIDATION_FAILED'): GraphQLError {
  if (error.extensions['code']) return error;
  const limit = isLimitError(error);
  return new GraphQLError(limit ? error.message.replace(/^Syntax Error: /, '') : error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    extensions: { ...error.extensions, code: limit ? 'GRAPHQL_VALIDATION_FAILED' : code },
  });
}
