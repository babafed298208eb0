import { performance } from 'node:perf_hooks';
import { isAsyncIterable } from '@envelop/core';
import { getOperationAST, Kind, type DocumentNode, type ExecutionResult, type GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { noMetrics, type GatewayMetrics } from './metrics.ts';
import { gatewayErrorIn, isLimitError } from './use-gateway-errors.ts';

/** What an operation's resolvers add to its log line (see `noteOperation`). */
export interface OperationFacts {
  /** The model the operation ran (or asked for, when it failed before running). */
  model?: string;
  /** The version that ran (the default version's number when the request named none). */
  version?: number;
  /** Rows the model saw: the batch dimension of a prediction, the rows of a batch job. Summed over root fields. */
  rows?: number;
  /** Tokens generated. */
  tokens?: number;
}

/** Per operation, by its context object: one context per operation, HTTP, SSE and WebSocket alike. */
const factsByContext = new WeakMap<object, OperationFacts>();

/**
 * Adds facts to the log line of the operation whose context this is; rows add up, the
 * rest is replaced. A resolver calls it with its `ctx`; outside a logged operation it
 * does nothing. Kept out of the context type on purpose: the log is not a resolver's
 * dependency, and resolvers that say nothing cost nothing.
 */
export function noteOperation(context: object, facts: OperationFacts): void {
  const current = factsByContext.get(context);
  if (!current) return;
  const rows = facts.rows === undefined ? current.rows : (current.rows ?? 0) + facts.rows;
  Object.assign(current, facts, rows === undefined ? {} : { rows });
}

/** What the log line says about where an operation came from (read loosely: the context is Yoga's or websocket.ts's). */
interface Origin {
  requestId?: string;
  request?: Request;
  params?: { operationName?: string | null };
  /** Set by authentication when the caller presented an API key; only the key's id is logged, never the key. */
  principal?: { keyId?: unknown };
}

const transportOf = (context: Origin): 'http' | 'sse' | 'ws' =>
  context.request ? (context.request.headers.get('accept')?.includes('text/event-stream') ? 'sse' : 'http') : 'ws';

function originFields(context: Origin) {
  const keyId = context.principal?.keyId;
  return {
    requestId: context.requestId ?? context.request?.headers.get('x-request-id') ?? undefined,
    transport: transportOf(context),
    ...(typeof keyId === 'string' || typeof keyId === 'number' ? { keyId } : {}),
  };
}

function operationFields(document: DocumentNode | undefined, operationName: string | null | undefined) {
  const operation = document && getOperationAST(document, operationName);
  return {
    operationName: operation?.name?.value ?? operationName ?? null,
    operationType: operation?.operation ?? null,
    // Anonymous operations are told apart by what they ask for.
    fields: operation?.selectionSet.selections.map((s) => (s.kind === Kind.FIELD ? s.name.value : '…')),
  };
}

/** The code a client saw for the first error: mapped ones carry it; anything else was masked as INTERNAL_SERVER_ERROR. */
function errorCodeOf(errors: ExecutionResult['errors']): string | undefined {
  const first = errors?.[0];
  if (!first) return undefined;
  const code = first.extensions?.['code'];
  return typeof code === 'string' ? code : (gatewayErrorIn(first)?.code ?? 'INTERNAL_SERVER_ERROR');
}

const roundMs = (since: number) => Math.round((performance.now() - since) * 1000) / 1000;

/**
 * One JSON log line per GraphQL operation, successful ones included, over HTTP, SSE and
 * WebSocket (websocket.ts runs every operation through the same envelop pipeline):
 *
 * - `graphql operation`: a query or mutation when its result is ready, or an operation
 *   refused before execution (parse or validation failure, a cost limit), or a
 *   subscription refused before its first event;
 * - `subscription started` when a subscription's stream begins, and `subscription ended`
 *   when it ends (completed, cancelled by the client, drained at shutdown, or failed),
 *   with `events` sent and the duration since it started.
 *
 * Fields: requestId, transport (http, sse, ws), operationName, operationType, fields (root
 * fields asked for), durationMs (from the start of execution), outcome (ok or error),
 * errorCode (of the first error), model, version, rows, tokens (what resolvers noted with
 * `noteOperation`), keyId (the API key's id, when the caller used one).
 *
 * The same outcomes feed `metrics` (one place decides name, type, outcome and code for
 * both): each `graphql operation` and `subscription ended` line counts one operation, an
 * executed query or mutation also its duration, and subscriptions started minus ended are
 * the active ones.
 *
 * Register it last: it reads results after the masking and error-code plugins have shaped them.
 */
export function useOperationLog(log: Logger, metrics: GatewayMetrics = noMetrics): Plugin {
  type Answered = { operationName: string | null; operationType: string | null; errorCode?: string | undefined; durationMs?: number };
  /** An operation answered: its line, and its count (with its duration when `executed`). */
  const line = (fields: Answered & Record<string, unknown>, msg: 'graphql operation' | 'subscription ended', executed = false) => {
    log.info(fields, msg);
    metrics.operation({
      operationName: fields.operationName,
      operationType: fields.operationType,
      errorCode: fields.errorCode,
      seconds: executed && fields.durationMs !== undefined ? fields.durationMs / 1000 : undefined,
    });
  };
  return {
    onParse({ context, params }) {
      return ({ result }) => {
        if (!(result instanceof Error)) return;
        const origin = context as Origin;
        line(
          {
            ...originFields(origin),
            ...operationFields(undefined, origin.params?.operationName),
            durationMs: 0,
            outcome: 'error',
            errorCode: isLimitError(result) ? 'GRAPHQL_VALIDATION_FAILED' : 'GRAPHQL_PARSE_FAILED',
            // The text is the client's, possibly huge: its length only.
            queryLength: typeof params.source === 'string' ? params.source.length : undefined,
          },
          'graphql operation',
        );
      };
    },
    onValidate({ context, params, validateFn, setValidationFn }) {
      const origin = context as Origin;
      const refused = (errors: number) =>
        line(
          {
            ...originFields(origin),
            ...operationFields(params.documentAST as DocumentNode, origin.params?.operationName),
            durationMs: 0,
            outcome: 'error',
            errorCode: 'GRAPHQL_VALIDATION_FAILED',
            errors,
          },
          'graphql operation',
        );
      // GraphQL Armor's cost limit throws from its rule instead of reporting, which skips the after-hook.
      setValidationFn((...args) => {
        try {
          return validateFn(...args) as readonly GraphQLError[];
        } catch (error) {
          refused(1);
          throw error;
        }
      });
      return ({ valid, result }) => {
        if (!valid) refused(result.length);
      };
    },
    onExecute({ args }) {
      const started = performance.now();
      const context = args.contextValue as Origin & object;
      const facts: OperationFacts = {};
      factsByContext.set(context, facts);
      return {
        onExecuteDone({ result }) {
          // @defer/@stream are not enabled; should they be, the line is written at the first part.
          const errors = isAsyncIterable(result) ? undefined : result.errors;
          const errorCode = errorCodeOf(errors);
          line(
            {
              ...originFields(context),
              ...operationFields(args.document as DocumentNode, args.operationName as string | null | undefined),
              durationMs: roundMs(started),
              outcome: errorCode ? 'error' : 'ok',
              errorCode,
              ...facts,
            },
            'graphql operation',
            true,
          );
        },
      };
    },
    onSubscribe({ args }) {
      const started = performance.now();
      const context = args.contextValue as Origin & object;
      const facts: OperationFacts = {};
      factsByContext.set(context, facts);
      const common = () => ({ ...originFields(context), ...operationFields(args.document as DocumentNode, args.operationName as string | null | undefined) });
      let events = 0;
      let errorCode: string | undefined;
      let ended = false;
      let streaming = false;
      const end = () => {
        if (ended) return;
        ended = true;
        if (streaming) metrics.subscriptionActive(-1);
        line({ ...common(), durationMs: roundMs(started), outcome: errorCode ? 'error' : 'ok', errorCode, events, ...facts }, 'subscription ended');
      };
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            ended = true;
            const code = errorCodeOf(result.errors);
            line({ ...common(), durationMs: roundMs(started), outcome: code ? 'error' : 'ok', errorCode: code, ...facts }, 'graphql operation');
            return undefined;
          }
          log.info({ ...common(), ...facts }, 'subscription started');
          metrics.subscriptionActive(1);
          streaming = true;
          return {
            onNext({ result: event }) {
              events++;
              errorCode ??= errorCodeOf(event.errors);
            },
            onEnd: end,
          };
        },
        // A stream that throws mid-way does not reach onEnd.
        onSubscribeError({ error }) {
          errorCode ??= gatewayErrorIn(error)?.code ?? 'INTERNAL_SERVER_ERROR';
          end();
        },
      };
    },
  };
}
