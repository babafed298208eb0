import { handleStreamOrSingleExecutionResult, type OnExecuteDoneHookResultOnNextHook } from '@envelop/core';
import { GraphQLError, type ExecutionResult } from 'graphql';
import { maskError as yogaMaskError, type Plugin, type YogaServerOptions } from 'graphql-yoga';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.ts';
import { gatewayErrorIn, gatewayGraphQLError } from './use-gateway-errors.ts';

/**
 * Expected: a GatewayError, or a GraphQLError that graphql-js or Yoga raised (parse,
 * validation, variable coercion, a scalar's refusal), alone or wrapping an expected one.
 * By class, never by name: an error named "GraphQLError" is not one.
 */
const isGraphQLError = (error: unknown): error is GraphQLError => error instanceof GraphQLError;
const isExpected = (error: unknown): boolean =>
  error instanceof GatewayError || (isGraphQLError(error) && (error.originalError == null || isExpected(error.originalError)));

function masked(error: unknown, requestId: string, log: Logger, isDev = false): GraphQLError {
  const original = isGraphQLError(error) && error.originalError ? error.originalError : error;
  log.error({ err: original, requestId, path: isGraphQLError(error) ? error.path : undefined }, 'unexpected error');
  const base = yogaMaskError(error, 'Unexpected error.', isDev) as GraphQLError;
  return new GraphQLError(base.message, {
    nodes: base.nodes,
    source: base.source,
    positions: base.positions,
    path: base.path,
    extensions: { ...base.extensions, code: 'INTERNAL_SERVER_ERROR', requestId },
  });
}

/**
 * Expected errors pass through (use-gateway-errors.ts gives GatewayErrors their code).
 * Anything else thrown while executing is logged with its stack and the request id
 * (from the context) and reaches the client only as "Unexpected error." with code
 * INTERNAL_SERVER_ERROR and that request id: no stack, no SQL, no file paths.
 *
 * This runs before Yoga's own masking (registered after user plugins), which stays as
 * the fallback for errors outside execution.
 */
export function useErrorMasking(log: Logger): Plugin<{ requestId?: string }> {
  const maskResult =
    (requestId: string) =>
    ({ result, setResult }: { result: ExecutionResult; setResult: (r: ExecutionResult) => void }) => {
      if (!result.errors?.some((e) => !isExpected(e))) return;
      setResult({ ...result, errors: result.errors.map((e) => (isExpected(e) ? e : masked(e, requestId, log))) });
    };
  return {
    onExecute({ args }) {
      const handle = maskResult((args.contextValue as { requestId?: string }).requestId ?? 'none');
      return { onExecuteDone: (payload) => handleStreamOrSingleExecutionResult(payload, handle as OnExecuteDoneHookResultOnNextHook<object>) };
    },
    onSubscribe({ args }) {
      const handle = maskResult((args.contextValue as { requestId?: string }).requestId ?? 'none');
      return { onSubscribeResult: (payload) => handleStreamOrSingleExecutionResult(payload, handle as OnExecuteDoneHookResultOnNextHook<object>) };
    },
  };
}

/**
 * Yoga's masking, for what escapes execution (context creation, plugins, a subscription's
 * stream failing mid-way): GatewayErrors get their code, the rest is logged and masked with a fresh id.
 */
export function fallbackMasking(log: Logger): NonNullable<YogaServerOptions<object, object>['maskedErrors']> {
  return {
    maskError(error, _message, isDev) {
      // Thrown as is while building the context (before any response: the status line is
      // free); or wrapped by the executor, from a subscription's stream after its first event.
      const gateway = gatewayErrorIn(error);
      if (gateway) return gatewayGraphQLError(gateway, isGraphQLError(error) ? error : undefined, gateway === error);
      if (isExpected(error)) return error as Error;
      return masked(error, 'none', log, isDev);
    },
  };
}
