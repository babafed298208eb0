import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError, type YogaServerOptions } from 'graphql-yoga';
import type { Logger } from 'pino';
import { currentRequestScope } from './request-scope.ts';

// By name, as envelop does: a GraphQLError from another copy of graphql-js still counts.
const isGraphQLError = (error: unknown): error is GraphQLError => error instanceof Error && error.name === 'GraphQLError';
const isExpected = (error: unknown): boolean =>
  isGraphQLError(error) && (error.originalError == null || isExpected(error.originalError));

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
      const original = isGraphQLError(error) && error.originalError ? error.originalError : error;
      log.error({ err: original, requestId, path: isGraphQLError(error) ? error.path : undefined }, 'unexpected error');
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
