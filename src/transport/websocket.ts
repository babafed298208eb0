import type { IncomingMessage, Server } from 'node:http';
import {
  getOperationAST,
  OperationTypeNode,
  type execute,
  type ExecutionArgs,
  type ExecutionResult,
  type FormattedExecutionResult,
  GraphQLError,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type parse,
  type subscribe,
  type validate,
} from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { credentialsFromConnection, type Credentials } from '../auth/authenticate.ts';
import type { Principal } from '../auth/principal.ts';
import { UnauthenticatedError } from '../errors.ts';
import { requestIdFor } from '../observability/request-id.ts';
import { requestError } from '../observability/use-gateway-errors.ts';
import { createOperationTracker } from './operation-tracker.ts';
import { originAllowed, type AllowedOrigins } from './origin-check.ts';
import type { PersistedParams } from './use-persisted-operations.ts';

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
 * An error as the client gets it, without `extensions.http`: Yoga's own errors (validation, a
 * bad variable) and the gateway's 400s carry the status line they want there, which Yoga
 * removes from HTTP and SSE bodies; a WebSocket has no status line, and gets the same body.
 */
function withoutHttp(error: GraphQLError | GraphQLFormattedError): GraphQLFormattedError {
  const formatted = 'toJSON' in error ? error.toJSON() : error;
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const extensions = { ...formatted.extensions };
  delete extensions['http'];
  return Object.keys(extensions).length > 0 ? { ...formatted, extensions } : { message: formatted.message, locations: formatted.locations, path: formatted.path };
}

const hasHttp = (errors: ReadonlyArray<GraphQLError | GraphQLFormattedError> | undefined) => errors?.some((e) => e.extensions && 'http' in e.extensions) ?? false;

/**
 * graphql-transport-ws (graphql-ws) on the HTTP server's `/graphql` path, running each
 * operation through Yoga's envelop pipeline, so plugins, limits, masking and context
 * are the same as over HTTP and SSE.
 *
 * The caller is authenticated once, at `connection_init` (`authenticate`, from its payload
 * or the upgrade request's headers), and every operation of the connection runs as that
 * principal. A missing or bad key closes the socket with 4401 Unauthorized, which
 * graphql-ws clients do not retry (4403, what returning false from onConnect sends, they do).
 *
 * Queries and mutations are tracked from the moment their message is read until their
 * result is sent, so shutdown can let them finish (`idle`) before `close` ends every
 * socket. Subscriptions are tracked apart: shutdown ends them (the event bus closes), and
 * `subscriptionsDone` resolves once each has sent its `complete`.
 *
 * An upgrade from a browser page of another site is refused with 403 (transport/origin-check.ts).
 */
export function attachWebSocket<TServerContext extends object, TUserContext extends object>(
  server: Server,
  yoga: YogaServerInstance<TServerContext, TUserContext>,
  log: Logger,
  options: {
    /** Largest message accepted; a bigger one closes the socket with 1009. */
    maxPayload: number;
    /** Origins allowed besides the request's own host. @default [] */
    allowedOrigins?: AllowedOrigins;
    /** PERSISTED_OPERATIONS' check of each subscribe payload (HTTP requests get it from Yoga's onParams). */
    params?: PersistedParams;
    /** The connection's principal from its credentials; throws UnauthenticatedError to refuse it. */
    authenticate: (credentials: Credentials) => Promise<Principal>;
  },
): { close: () => Promise<void>; idle: () => Promise<void>; subscriptionsDone: () => Promise<void>; operations: () => number; sockets: () => number } {
  const operations = createOperationTracker();
  /** Subscriptions under way, so shutdown can wait for their `complete` to be sent after ending them. */
  const subscriptions = createOperationTracker();
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxPayload,
    verifyClient: ({ req }, accept) => {
      if (originAllowed(req.headers, options.allowedOrigins ?? [])) return accept(true);
      log.warn({ origin: req.headers.origin, host: req.headers.host, requestId: requestIdFor(req) }, 'websocket upgrade refused: origin not allowed');
      accept(false, 403, `ORIGIN_NOT_ALLOWED: WebSocket connections from ${req.headers.origin} are not allowed (ALLOWED_ORIGINS)`);
    },
  });
  const principals = new WeakMap<object, Principal>();
  const disposable = useServer<Record<string, unknown> | undefined, { request: IncomingMessage }>(
    {
      onConnect: async (ctx) => {
        try {
          principals.set(ctx, await options.authenticate(credentialsFromConnection(ctx.connectionParams, ctx.extra.request.headers)));
          return true;
        } catch (error) {
          if (!(error instanceof UnauthenticatedError)) throw error;
          // Close reasons are at most 123 bytes.
          ctx.extra.socket.close(4401, error.message.slice(0, 123));
          return false;
        }
      },
      execute: (args) => (args.rootValue as { execute: Enveloped['execute'] }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: Enveloped['subscribe'] }).subscribe(args),
      onSubscribe: async (ctx, id, received) => {
        operations.begin(ctx, id);
        let payload = received;
        if (options.params) {
          try {
            // graphql-ws requires a `query` string: persisted clients send "" and the id.
            const checked = await options.params(payload as Parameters<PersistedParams>[0]);
            payload = { ...payload, query: checked.query ?? '' };
          } catch (error) {
            operations.end(ctx, id);
            return [error as GraphQLError];
          }
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          requestId: requestIdFor(ctx.extra.request),
          principal: principals.get(ctx),
        }) as Enveloped;
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          operations.end(ctx, id);
          if (!(error instanceof GraphQLError)) throw error;
          return [requestError(error, 'GRAPHQL_PARSE_FAILED')];
        }
        if (getOperationAST(document, payload.operationName)?.operation === OperationTypeNode.SUBSCRIPTION) {
          operations.end(ctx, id);
          subscriptions.begin(ctx, id);
        }
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
      onComplete: (ctx, id) => {
        operations.end(ctx, id);
        subscriptions.end(ctx, id);
      },
      onClose: (ctx) => {
        operations.endAll(ctx);
        subscriptions.endAll(ctx);
      },
      onError: (ctx, id, _payload, errors) => {
        operations.end(ctx, id);
        subscriptions.end(ctx, id);
        log.debug({ errors: errors.map((e) => e.message) }, 'websocket operation error');
        return errors.map(withoutHttp);
      },
      onNext: (_ctx, _id, _payload, _args, result: ExecutionResult): FormattedExecutionResult | void => {
        if (hasHttp(result.errors)) return { ...result, errors: result.errors!.map(withoutHttp) };
      },
    },
    wss,
  );
  let closing: Promise<void> | undefined;
  // dispose() completes every subscription, closes the sockets (1001) and the WebSocket server.
  return {
    close: () => (closing ??= Promise.resolve(disposable.dispose())),
    idle: () => operations.idle(),
    // graphql-ws sends `complete` right after onComplete: one turn of the event loop later it is written.
    subscriptionsDone: () => subscriptions.idle().then(() => new Promise<void>((resolve) => setImmediate(resolve))),
    operations: () => operations.count,
    sockets: () => wss.clients.size,
  };
}
