import type { IncomingMessage, Server } from 'node:http';
import { getOperationAST, GraphQLError, OperationTypeNode, type execute, type ExecutionArgs, type GraphQLSchema, type parse, type subscribe, type validate } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { requestIdFor } from '../observability/request-id.ts';
import { requestError } from '../observability/use-gateway-errors.ts';
import { createOperationTracker } from './operation-tracker.ts';

/** Envelop types its phases `any` (it serves every graphql-js version); these are graphql-js 16's. */
interface Enveloped {
  schema: GraphQLSchema;
  parse: typeof parse;
  validate: typeof validate;
  execute: typeof execute;
  subscribe: typeof subscribe;
  contextFactory: () => unknown;
}

/**
 * graphql-transport-ws (graphql-ws) on the HTTP server's `/graphql` path, running each
 * operation through Yoga's envelop pipeline, so plugins, limits, masking and context
 * are the same as over HTTP and SSE.
 *
 * Queries and mutations are tracked from the moment their message is read until their
 * result is sent, so shutdown can let them finish (`idle`) before `close` ends every
 * subscription and socket. Subscriptions are not tracked: shutdown ends them.
 */
export function attachWebSocket<TServerContext extends object, TUserContext extends object>(
  server: Server,
  yoga: YogaServerInstance<TServerContext, TUserContext>,
  log: Logger,
  options: { /** Largest message accepted; a bigger one closes the socket with 1009. */ maxPayload: number },
): { close: () => Promise<void>; idle: () => Promise<void>; operations: () => number; sockets: () => number } {
  const operations = createOperationTracker();
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint, maxPayload: options.maxPayload });
  const disposable = useServer<Record<string, unknown> | undefined, { request: IncomingMessage }>(
    {
      execute: (args) => (args.rootValue as { execute: Enveloped['execute'] }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: Enveloped['subscribe'] }).subscribe(args),
      onSubscribe: async (ctx, id, payload) => {
        operations.begin(ctx, id);
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          requestId: requestIdFor(ctx.extra.request),
        }) as Enveloped;
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          operations.end(ctx, id);
          if (!(error instanceof GraphQLError)) throw error;
          return [requestError(error, 'GRAPHQL_PARSE_FAILED')];
        }
        if (getOperationAST(document, payload.operationName)?.operation === OperationTypeNode.SUBSCRIPTION) operations.end(ctx, id);
        let errors: readonly GraphQLError[];
        try {
          errors = validate(schema, document);
        } catch (error) {
          // GraphQL Armor's cost limit throws from its rule: an error message for this
          // operation, not a close of the whole socket (graphql-ws's 4500).
          if (!(error instanceof GraphQLError)) throw error;
          errors = [error];
        }
        if (errors.length > 0) {
          operations.end(ctx, id);
          return errors.map((error) => requestError(error, 'GRAPHQL_VALIDATION_FAILED'));
        }
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        return args;
      },
      // The result (or error) has been sent by now.
      onComplete: (ctx, id) => operations.end(ctx, id),
      onClose: (ctx) => operations.endAll(ctx),
      onError: (ctx, id, _payload, errors) => {
        operations.end(ctx, id);
        log.debug({ errors: errors.map((e) => e.message) }, 'websocket operation error');
      },
    },
    wss,
  );
  let closing: Promise<void> | undefined;
  // dispose() completes every subscription, closes the sockets (1001) and the WebSocket server.
  return {
    close: () => (closing ??= Promise.resolve(disposable.dispose())),
    idle: () => operations.idle(),
    operations: () => operations.count,
    sockets: () => wss.clients.size,
  };
}
