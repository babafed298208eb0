import type { IncomingMessage, ServerResponse } from 'node:http';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { createYoga, useReadinessCheck } from 'graphql-yoga';
import type { Config } from './config.ts';
import { ModelRepository } from './inference/repository.ts';
import { errorMasking } from './observability/error-masking.ts';
import { createLogger, yogaLogger, type Logger } from './observability/logger.ts';
import { requestIdFor, runInRequestScope } from './observability/request-scope.ts';
import { useVariableErrorCodes } from './observability/use-variable-error-codes.ts';
import { createPredictionService } from './prediction-service.ts';
import type { Context } from './schema/builder.ts';
import { schema } from './schema/index.ts';
import { openDatabase, type Database } from './store/database.ts';
import { createLoaders } from './store/loaders.ts';
import { createPredictionRepository } from './store/prediction-repository.ts';

export interface AppOptions {
  log?: Logger;
  /** Called with each SQL statement sent to the database (tests count them). */
  onQuery?: (sql: string) => void;
}

export interface App {
  config: Config;
  log: Logger;
  db: Database;
  models: ModelRepository;
  /** Node request listener: request id scope + Yoga. */
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  yoga: ReturnType<typeof createYoga<{ req: IncomingMessage; res: ServerResponse }, Context>>;
  /** Resolves once every model version is READY or FAILED. */
  modelsLoaded: Promise<void>;
  /** Releases sessions and the database. Call after the HTTP server has stopped. */
  close(): Promise<void>;
}

/** Builds the gateway (database migrated, models loading in the background); never listens. */
/**
 * Operation limits (GraphQL Armor). Generous for real clients; send large tensors as
 * variables, which do not count as tokens. Field suggestions stay on for GraphiQL users.
 */
const armor = new EnvelopArmor({
  maxDepth: { n: 20, ignoreIntrospection: false },
  maxAliases: { n: 50 },
  maxTokens: { n: 20_000 },
  maxDirectives: { n: 50 },
  costLimit: { maxCost: 20_000 },
  blockFieldSuggestion: { enabled: false },
});

/** Requests with a declared body larger than this get 413 before Yoga reads them. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? createLogger(config.logLevel);
  const db = await openDatabase(config.databaseUrl, { onQuery: options.onQuery });
  const models = new ModelRepository(config.modelRepository, log);
  const modelsLoaded = models.load();
  const predictions = createPredictionRepository(db);
  const predictionService = createPredictionService({ models, predictions });

  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    graphiql: config.graphiql ? { title: 'ONNX GraphQL gateway' } : false,
    landingPage: false,
    logging: yogaLogger(log),
    maskedErrors: errorMasking(log),
    context: ({ request }) => ({
      requestId: request.headers.get('x-request-id') ?? 'none',
      models,
      predictions,
      predictionService,
      loaders: createLoaders(predictions),
    }),
    plugins: [
      ...armor.protect().plugins,
      useVariableErrorCodes(),
      useReadinessCheck({
        endpoint: '/readyz',
        check: async () => {
          if (!models.loaded) return false;
          await db.$queryRawUnsafe('SELECT 1');
          return true;
        },
      }),
    ],
  });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFor(req);
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      res.writeHead(413, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: `Request body over ${MAX_BODY_BYTES} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] }));
      req.resume();
      return;
    }
    runInRequestScope({ requestId }, () => void yoga(req, res));
  };

  return {
    config,
    log,
    db,
    models,
    handle,
    yoga,
    modelsLoaded,
    async close() {
      await yoga.dispose();
      await models.close();
      await db.$disconnect();
    },
  };
}
