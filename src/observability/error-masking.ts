import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError, type YogaServerOptions } from 'graphql-yoga';
import type { Logger } from 'pino';
import { currentRequestScope } from './request-scope.ts';

const isExpected = (error: unknown): boolean =>
  error instanceof GraphQLError && (error.originalError == null || isExpected(error.originalError));

/**
 * Expected errors (GraphQLErrors, which carry `extensions.code`) pass through.
 * Anything else is logged with its stack and the request id and reaches the client
 * only as "Unexpected error." with code INTERNAL_SERVER_ERROR and that request id:
 * no stack, no SQL, no file paths.
 */
export function errorMasking(log: Logger): NonNullable<YogaServerOptions<object, object>['maskedErrors']> {
  return {
    maskError(error, message, isDev) {
      if (isExpected(error)) return error as Error;
      const requestId = currentRequestScope()?.requestId ?? 'none';
      const original = error instanceof GraphQLError && error.originalError ? error.originalError : error;
      log.error({ err: original, requestId, path: error instanceof GraphQLError ? error.path : undefined }, 'unexpected error');
      const masked = yogaMaskError(error, message, isDev) as GraphQLError;
      return new GraphQLError(masked.message, {
        nodes: masked.nodes,
        source: masked.source,
        positions: masked.positions,
        path: masked.path,
        extensions: { ...masked.extensions, code: 'INTERNAL_SERVER_ERROR', requestId },
      });
    },
  };
}
