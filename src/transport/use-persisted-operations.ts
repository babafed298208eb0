import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import { createGraphQLError, type GraphQLParams, type Plugin } from 'graphql-yoga';
import type { PersistedOperations } from './persisted-operations.ts';

/** The id a request names: GraphQL over HTTP's `documentId`, else Apollo's `extensions.persistedQuery.sha256Hash`. */
function operationIdOf(params: GraphQLParams & { documentId?: unknown }): string | null {
  if (typeof params.documentId === 'string') return params.documentId;
  const persisted = (params.extensions as { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } | undefined)?.persistedQuery;
  return persisted?.version === 1 && typeof persisted.sha256Hash === 'string' ? persisted.sha256Hash : null;
}

const ONLY_MESSAGE = 'Only persisted operations run here: send `documentId` (or `extensions.persistedQuery.sha256Hash`) instead of `query`';

/** Checks one request's params, throwing the refusal; returns the params with the listed `query`. */
export type PersistedParams = (params: GraphQLParams) => Promise<GraphQLParams>;

/**
 * Yoga's usePersistedOperations over `operations`: a request runs only when it names an id of
 * the file, and a request with a `query` is refused (PERSISTED_QUERY_ONLY), so no document
 * outside the list ever reaches the parser. An unknown id is PERSISTED_QUERY_NOT_FOUND. Both
 * are HTTP 400.
 *
 * `plugin` serves HTTP and SSE (Yoga's onParams hook); `params` applies the same hook to a
 * graphql-ws subscribe payload, which does not pass through it (transport/websocket.ts).
 */
export function persistedOperationsOnly(operations: PersistedOperations): { plugin: Plugin; params: PersistedParams } {
  const only = () => createGraphQLError(ONLY_MESSAGE, { extensions: { code: 'PERSISTED_QUERY_ONLY', http: { status: 400 } } });
  const plugin = usePersistedOperations({
    getPersistedOperation: (id) => operations.get(id) ?? null,
    extractPersistedOperationId: operationIdOf,
    allowArbitraryOperations: false,
    customErrors: {
      notFound: ({ params }) =>
        createGraphQLError(`No persisted operation has the id \`${operationIdOf(params)}\``, {
          extensions: { code: 'PERSISTED_QUERY_NOT_FOUND', http: { status: 400 } },
        }),
      persistedQueryOnly: only,
      keyNotFound: only,
    },
  }) as Plugin;
  const onParams = plugin.onParams!;
  return {
    plugin,
    async params(params) {
      let checked = params;
      await onParams({ params, setParams: (p: GraphQLParams) => (checked = p), context: {} } as unknown as Parameters<typeof onParams>[0]);
      return checked;
    },
  };
}
