import type { Server } from 'node:http';
import type { ExecutionArgs, GraphQLError } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { requestIdFor } from '../observability/request-id.ts';

type Enveloped = ReturnType<YogaServerInstance<any, any>['getEnveloped']>;

/**
 * graphql-transport-ws (graphql-ws) on the HTTP server's `/graphql` path, running each
 * operation through Yoga's envelop pipeline, so plugins, limits, masking and context
 * are the same as over HTTP and SSE. Returns a function that closes every socket.
 */
export function attachWebSocket(
  server: Server,
  yoga: YogaServerInstance<any, any>,
  log: Logger,
  options: { /** Largest message accepted; a bigger one closes the socket with 1009. */ maxPayload: number },
): () => Promise<void> {
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint, maxPayload: options.maxPayload });
  const disposable = useServer<Record<string, unknown> | undefined, { request: import('node:http').IncomingMessage }>(
    {
      execute: (args) => (args.rootValue as { execute: Enveloped['execute'] }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: Enveloped['subscribe'] }).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          requestId: requestIdFor(ctx.extra.request),
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as GraphQLError];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
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
      onError: (_ctx, _id, _payload, errors) => {
        log.debug({ errors: errors.map((e) => e.message) }, 'websocket operation error');
      },
    },
    wss,
  );
  let closing: Promise<void> | undefined;
  // dispose() completes every subscription, closes the sockets (1001) and the WebSocket server.
  return () => (closing ??= Promise.resolve(disposable.dispose()));
}
