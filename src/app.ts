import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { createYoga } from 'graphql-yoga';
import type { Config } from './config.ts';
import { createGenerationService } from './serving/generate.ts';
import { createHistory } from './serving/history.ts';
import { ModelRepository } from './inference/repository.ts';
import { createTrafficRouter } from './inference/traffic.ts';
import type { ModelEvent } from './inference/model-events.ts';
import { fallbackMasking, useErrorMasking } from './observability/error-masking.ts';
import { createLogger, yogaLogger, type Logger } from './observability/logger.ts';
import { requestIdFor } from './observability/request-id.ts';
import { useGatewayErrors } from './observability/use-gateway-errors.ts';
import { UnauthenticatedError } from './errors.ts';
import { useOperationLog } from './observability/use-operation-log.ts';
import { createMetrics, gatewaySources, noMetrics } from './observability/metrics.ts';
import { metricsEndpoint } from './observability/metrics-endpoint.ts';
import { scrapeThroughPrimary } from './cluster/cluster-metrics.ts';
import { useReadiness } from './observability/use-readiness.ts';
import { createPredictionService } from './serving/predict.ts';
import { createEventBus, type EventBusOptions } from './pubsub/event-bus.ts';
import { claimOnce, openRedisEventTarget } from './pubsub/redis-event-target.ts';
import { createOutbox } from './pubsub/outbox.ts';
import type { PredictionRecord } from './serving/records.ts';
import { createMemoryResponseCache } from './cache/response-cache.ts';
import { createRedisResponseCache } from './cache/redis-response-cache.ts';
import type { Context } from './schema/builder.ts';
import { schema } from './schema/index.ts';
import { openStore, type Database } from './store/database.ts';
import { createBatchJobRepository } from './store/batch-job-repository.ts';
import { createBatchJobService } from './serving/batch-jobs.ts';
import { createNotifier } from './serving/batch-notify.ts';
import { createBatchWorker } from './serving/batch-worker.ts';
import { createBullmqDispatcher } from './jobs/bullmq-dispatcher.ts';
import { batchResultsDownload } from './transport/batch-results-download.ts';
import { createLoaders } from './store/loaders.ts';
import { createPredictionRepository } from './store/prediction-repository.ts';
import { createFeedbackRepository } from './store/feedback-repository.ts';
import { createFeedbackService } from './serving/feedback.ts';
import { createShadowRepository } from './store/shadow-repository.ts';
import { createShadowTraffic } from './serving/shadow.ts';
import { readBodyWithin, refuseUnread } from './transport/body-limit.ts';
import { CSRF_HEADERS, postRefusal, useCsrfPreventionForGet } from './transport/csrf-prevention.ts';
import { useNoIntrospection } from './transport/use-no-introspection.ts';
import { useCostLimit } from './transport/use-cost-limit.ts';
import { persistedOperationsOnly } from './transport/use-persisted-operations.ts';
import { isMultipart, readMultipartOperation, Uploads } from './transport/multipart-upload.ts';
import { TensorVariables, useTensorVariables } from './transport/use-tensor-variables.ts';
import { useSharedSubscriptions } from './transport/use-shared-subscriptions.ts';
import { clientAddress, createRateLimiter } from './transport/rate-limit.ts';
import { useRateLimit } from './transport/use-rate-limit.ts';
import { corsOptions } from './transport/origin-check.ts';
import { attachWebSocket } from './transport/websocket.ts';
import { createAuthenticator, credentialsFromHeaders, credentialsFromNodeHeaders } from './auth/authenticate.ts';
import { ownerOf, type Principal } from './auth/principal.ts';
import { createApiKeyRepository } from './store/api-key-repository.ts';
import { measureDrift, referencedFeatures } from './monitoring/drift.ts';
import { createDriftWatch } from './monitoring/drift-watch.ts';

export interface AppOptions {
  log?: Logger;
  /** Called with each SQL statement sent to the database (tests count them). */
  onQuery?: (sql: string) => void;
  /** Subscriber queue limits (tests make them small to overflow them). */
  eventBus?: EventBusOptions;
  /** First wait between notifyUrl attempts (tests shorten it). @default 1000 */
  notifyBackoffMs?: number;
  /** Run the batch worker in this process (false: jobs queued here run in the process that does). @default true */
  batchWorker?: boolean;
  /**
   * Run the outbox sweeper here when events cross processes (without Redis to elect one
   * sweeper at a time, only one process of a machine should). @default true
   */
  outboxSweeper?: boolean;
  /** A worker of our cluster primary: /metrics answers with every worker's metrics added up (cluster/cluster-metrics.ts). */
  metricsThroughPrimary?: boolean;
}

/**
 * Operation limits (GraphQL Armor). Generous for real clients; send large tensors as
 * variables, which do not count as tokens. Field suggestions stay on for GraphiQL users.
 * The standard introspection query (`__schema`, 21 levels with every option) is exempt
 * from depth so GraphiQL's docs and codegen tools work; the token, alias and directive
 * limits still bound it. `__type` lookups are not exempt. Armor's cost limit is off: it
 * sees neither variables nor tensor sizes; MAX_QUERY_COST (transport/use-cost-limit.ts) does.
 */
const armor = new EnvelopArmor({
  maxDepth: { n: 20, ignoreIntrospection: true },
  maxAliases: { n: 50 },
  maxTokens: { n: 20_000 },
  maxDirectives: { n: 50 },
  costLimit: { enabled: false },
  blockFieldSuggestion: { enabled: false },
});

export const GRAPHIQL_DEFAULT_QUERY = `# Predict with a shipped model, selecting only what you need:
mutation Predict {
  predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) {
    id
    label
    scores(top: 3) { label probability }
  }
}

# Stream a generation token by token (run it, and watch the result pane):
subscription Generate {
  generate(input: { model: "fortune", prompt: "The ", maxTokens: 120, temperature: 0.7 }) {
    token
    text
    done
    finishReason
    predictionId
  }
}
`;

/** Request bodies (and WebSocket messages) larger than this get 413 (close code 1009), counted as they stream. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * A body already read, in the form whatwg-node takes from `req.body` (as behind Express):
 * JSON parsed once here; anything else (or JSON that does not parse, for Yoga's own error)
 * as a stream of the bytes. Never the Buffer itself: whatwg-node calls `Object.keys()` on
 * `req.body`, which on a Buffer makes one string per byte (tens of MB for a 1 MB body).
 */
function alreadyReadBody(req: IncomingMessage, body: Buffer): unknown {
  if (req.headers['content-type']?.includes('json')) {
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (parsed !== null && typeof parsed === 'object' && Object.keys(parsed).length > 0) return parsed;
    } catch {
      // Not JSON after all: Yoga reads the bytes and answers with its own error.
    }
  }
  return Readable.from([body]);
}

export type App = Awaited<ReturnType<typeof createApp>>;

/** Builds the gateway (database migrated, models loading in the background); never listens. */
export async function createApp(config: Config, options: AppOptions = {}) {
  const log = options.log ?? createLogger(config.logLevel);
  const metrics = config.metrics ? createMetrics() : noMetrics;
  // Events cross processes through Redis, or through the cluster primary (an event target passed in).
  const eventsCrossProcesses = config.redisUrl !== undefined || options.eventBus?.eventTarget !== undefined;
  const store = await openStore(config.databaseUrl, { onQuery: options.onQuery, sqliteSynchronous: config.sqliteSynchronous, eventPending: eventsCrossProcesses });
  const db: Database = store.db;
  const historyWriter = store.history;
  // With REDIS_URL, events travel through Redis: a subscriber on any replica hears every replica's events.
  const redis = config.redisUrl ? openRedisEventTarget(config.redisUrl) : undefined;
  const bus = createEventBus(redis ? { ...options.eventBus, eventTarget: redis.target, topicPrefix: config.redisPrefix } : options.eventBus);
  const predictions = createPredictionRepository(db, { writer: historyWriter, groupCommit: config.batching, onCommit: metrics.historyCommit });
  /** Model events (registry, traffic router, shadow): to `modelEvents` subscribers, and counted. */
  const publishModelEvent = (event: ModelEvent) => {
    metrics.modelEvent(event.model, event.type);
    bus.publish('model.event', event);
  };
  const feedbackStore = createFeedbackRepository(db);
  // Traffic splits (model.json `traffic`, setTrafficSplit); the ACCURACY guard reads feedback from the database.
  const traffic = createTrafficRouter({
    log,
    onEvent: publishModelEvent,
    signals: {
      ACCURACY: {
        figure: async ({ model, version, since }) => {
          const quality = await feedbackStore.quality(model, version, since);
          return { samples: quality.count, value: quality.accuracy };
        },
      },
    },
  });
  const models = new ModelRepository(config.modelRepository, log, {
    traffic,
    batching: config.batching,
    observer: metrics.inference,
    onEvent: publishModelEvent,
    // Verified swap: a version loaded while another serves first replays the model's newest stored requests.
    servedExamples: (model, limit) => predictions.servedExamples(model, limit),
    replayRequests: config.modelReplayRequests,
  });
  const modelsLoaded = models.load();
  // Hot reload: the repository is scanned again every MODEL_POLL_INTERVAL_MS, once the first load is done.
  void modelsLoaded.then(() => models.startPolling(config.modelPollIntervalMs));
  const outbox = eventsCrossProcesses
    ? createOutbox<PredictionRecord>(
        {
          pending: (before, limit) => predictions.eventPending(before, limit),
          markPublished: (ids) => historyWriter.markPublished(ids),
          publish: (record) => bus.publish('prediction.created', record),
          flushed: redis?.ping,
          claimSweep: redis ? claimOnce(redis.client, `${config.redisPrefix}outbox:sweeper`, config.outboxGraceMs / 2) : undefined,
          log,
        },
        { graceMs: config.outboxGraceMs },
      )
    : undefined;
  if (outbox && options.outboxSweeper !== false) outbox.start();
  const history = createHistory({ store: predictions, bus, outbox });
  // Response cache for the models whose model.json asks for it: shared through Redis when there is one.
  const responseCache = redis ? createRedisResponseCache(redis.client, config.redisPrefix) : createMemoryResponseCache();
  // Shadow traffic (setShadow): mirrored predictions run on the shadow version after the caller's answer, their results stored beside the predictions.
  const shadowStore = createShadowRepository(db, store.shadowResults);
  const shadow = createShadowTraffic({ models, store: shadowStore, publish: publishModelEvent, log, onRun: metrics.shadowRun }, { maxOutstanding: config.shadowMaxOutstanding });
  const predictionService = createPredictionService({ models, history, cache: responseCache, onRun: traffic.record, shadow });
  const generationService = createGenerationService({ models, history, maxConcurrent: config.maxGenerations });
  const batchJobStore = createBatchJobRepository(db, store.batchJobs);
  const feedback = createFeedbackService({ store: feedbackStore, models });
  const notifier = createNotifier({ store: batchJobStore, log }, { timeoutMs: config.batch.notifyTimeoutMs, attempts: config.batch.notifyAttempts, backoffMs: options.notifyBackoffMs });
  // With REDIS_URL, jobs go through a BullMQ queue that any replica's worker takes from; else this process takes them from the database.
  const dispatcher = config.redisUrl
    ? createBullmqDispatcher({ url: config.redisUrl, prefix: config.redisPrefix, leaseMs: config.batch.leaseMs, pending: () => batchJobStore.unfinished(), log })
    : undefined;
  const batchWorker = createBatchWorker(
    { store: batchJobStore, models, bus, notifier, log, dispatcher },
    { concurrency: config.batch.concurrency, chunkRows: config.batch.chunkRows },
  );
  const batchJobs = createBatchJobService({ store: batchJobStore, models, bus, notifier, queued: batchWorker.queued, log, limits: { maxRows: config.batch.maxRows } });
  // The worker starts once the models are loaded: the jobs it resumes need them.
  const batchWorkerStarted =
    options.batchWorker === false
      ? Promise.resolve()
      : modelsLoaded.then(() => batchWorker.start()).catch((error: unknown) => log.error({ err: error }, 'batch worker did not start'));
  // Drift checks (DRIFT_CHECK_INTERVAL_MS): served versions whose model.json has a training reference, from the first interval after the models load.
  const driftWatch = createDriftWatch(
    {
      versions: () => models.list().flatMap((m) => m.versions.flatMap((v) => (v.status === 'READY' && v.served && referencedFeatures(v.served) ? [v.served] : []))),
      measure: (version) => measureDrift(predictions.recentInputs, version, config.drift.window),
      publish: (alert) => bus.publish('drift.alert', alert),
      log,
    },
    { intervalMs: config.drift.checkIntervalMs, threshold: config.drift.psiThreshold, minSamples: config.drift.minSamples },
  );
  if (config.drift.checkIntervalMs > 0) void modelsLoaded.then(() => driftWatch.start(), () => {});
  // API keys (AUTH_MODE): resolved once per HTTP request or WebSocket connection, cached 5 s.
  const auth = createAuthenticator(createApiKeyRepository(db), {
    mode: config.authMode,
    onTouchError: (error) => log.warn({ err: error }, 'could not record an API key\'s lastUsedAt'),
  });
  const authenticate = (req: IncomingMessage) => auth.principalFor(credentialsFromNodeHeaders(req.headers));
  const downloadResults = batchResultsDownload({ jobs: batchJobStore, predictions, authenticate });
  const registry = metrics.registry;
  const serveMetrics =
    registry &&
    metricsEndpoint({
      scrape: options.metricsThroughPrimary ? scrapeThroughPrimary(registry) : async () => ({ contentType: registry.contentType, text: await registry.metrics() }),
      token: config.metricsToken,
    });

  /** The files of each multipart request, for its context; other requests get none. */
  const uploadsOf = new WeakMap<IncomingMessage, Uploads>();
  const uploadDir = config.uploadDir ?? join(tmpdir(), 'gateway-uploads');

  // Budgets per caller (RATE_LIMITS), shared by the replicas through Redis when there is one.
  const rateLimiter = createRateLimiter(config.rateLimits, { redis: redis?.client, prefix: config.redisPrefix, onRefused: (operationClass) => metrics.rateLimited(operationClass) });

  // PERSISTED_OPERATIONS: only the listed operations run, over HTTP, SSE and WebSocket.
  const persisted = config.persistedOperations && persistedOperationsOnly(config.persistedOperations);
  const sharedSubscriptions = useSharedSubscriptions({
    fields: ['predictionCreated', 'batchJobProgress'],
    // Keys without the admin scope see only their own objects: only subscribers of one key share an execution.
    scopeOf: (context) => ownerOf((context as Context).principal) ?? '*',
    maxEvents: options.eventBus?.bufferSize,
    maxBytes: options.eventBus?.bufferBytes,
  });
  metrics.observe(gatewaySources({ models, history: predictions, generations: generationService, subscribers: () => sharedSubscriptions.stats().subscribers }));
  const yoga = createYoga<{ req?: IncomingMessage; res?: ServerResponse }, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/healthz',
    cors: corsOptions(config.allowedOrigins),
    // GraphiQL subscribes over GET, which needs the CSRF header (transport/csrf-prevention.ts).
    graphiql: config.graphiql ? { title: 'ONNX GraphQL gateway', defaultQuery: GRAPHIQL_DEFAULT_QUERY, additionalHeaders: { [CSRF_HEADERS[0]]: '1' } } : false,
    // GraphiQL's assets are served from the package, not a CDN: works offline and behind
    // firewalls. The bundle costs ~45 MB of memory, so it loads on the first page view.
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    landingPage: false,
    // Multipart requests are read in `handle`, files to disk; Yoga's own parser would hold them in memory.
    multipart: false,
    logging: yogaLogger(log),
    maskedErrors: fallbackMasking(log),
    context: async (initial) => {
      // WebSocket: resolved once at connection_init (transport/websocket.ts); HTTP and SSE: from the headers. Throws UNAUTHENTICATED.
      const principal = (initial as { principal?: Principal }).principal ?? (await auth.principalFor(credentialsFromHeaders(initial.request.headers)));
      return {
        // HTTP: the id `handle` put on the request; WebSocket: the one onSubscribe passes in.
        requestId: (initial as { requestId?: string }).requestId ?? initial.request?.headers.get('x-request-id') ?? 'none',
        models,
        predictions,
        predictionService,
        generationService,
        batchJobs,
        batchJobStore,
        bus,
        feedback,
        traffic,
        shadow,
        loaders: createLoaders(predictions, ownerOf(principal), feedbackStore, shadowStore),
        tensorVariables: new TensorVariables(),
        uploads: (initial.req && uploadsOf.get(initial.req)) ?? new Uploads(),
        clientAddress: clientAddress(initial.req, config.trustProxy),
        principal,
      };
    },
    plugins: [
      ...(persisted ? [persisted.plugin] : []),
      ...armor.protect().plugins,
      ...(config.introspection ? [] : [useNoIntrospection()]),
      useCsrfPreventionForGet(),
      useTensorVariables(),
      // Charged when the operation runs; the cost limit after it replaces a too costly one, which is then never charged.
      ...(rateLimiter.enabled ? [useRateLimit(rateLimiter)] : []),
      useCostLimit(config.maxQueryCost),
      sharedSubscriptions,
      useErrorMasking(log),
      useGatewayErrors(),
      useReadiness({ models, log, pingDatabase: () => db.$queryRawUnsafe('SELECT 1 FROM "Prediction" LIMIT 1'), pingRedis: redis?.ping }),
      useOperationLog(log, metrics),
    ],
  });

  /** Node request listener: request id scope + Yoga. */
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFor(req);
    req.headers['x-request-id'] = requestId;
    res.setHeader('x-request-id', requestId);
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (downloadResults(req, res) || serveMetrics?.(req, res)) return;
      void yoga(req, res);
      return;
    }
    // Forms, text/plain and uploads without a CSRF header are refused unread (transport/csrf-prevention.ts).
    const refusal = postRefusal(req);
    if (refusal) return refuseUnread(req, res, refusal);
    if (isMultipart(req)) {
      const readUpload = () =>
        readMultipartOperation(req, res, { maxFileBytes: config.maxUploadBytes, maxFieldBytes: MAX_BODY_BYTES, dir: uploadDir }).then(
          (operation) => {
            if (!operation) return;
            uploadsOf.set(req, operation.uploads);
            res.once('close', () => {
              operation.uploads.cleanup().catch((error: unknown) => log.warn({ err: error, requestId }, 'could not delete uploaded files'));
            });
            req.headers['content-type'] = 'application/json';
            (req as IncomingMessage & { body?: unknown }).body = operation.body;
            void yoga(req, res);
          },
          () => res.destroy(),
        );
      // An upload without a valid key is refused before a byte of it goes to disk.
      authenticate(req).then(readUpload, (error: unknown) => (error instanceof UnauthenticatedError ? refuseUnread(req, res, error) : res.destroy()));
      return;
    }
    readBodyWithin(req, res, MAX_BODY_BYTES).then(
      (body) => {
        if (!body) return;
        if (body.length > 0) (req as IncomingMessage & { body?: unknown }).body = alreadyReadBody(req, body);
        void yoga(req, res);
      },
      () => res.destroy(),
    );
  };

  const sockets: Array<ReturnType<typeof attachWebSocket>> = [];

  return {
    config,
    log,
    db,
    historyWriter,
    models,
    /** Prometheus metrics (no-ops when METRICS=false); the rate limiter counts its refusals with `metrics.rateLimited(operationClass)`. */
    metrics,
    yoga,
    bus,
    /** Set when events cross processes (REDIS_URL, WORKERS > 1). */
    outbox,
    /** Broadcast subscriptions sharing one execution, and each subscriber's queue. */
    sharedSubscriptions: () => sharedSubscriptions.stats(),
    generationService,
    batchJobs,
    batchJobStore,
    /** Traffic splits and rollout guards (setTrafficSplit; model.json `traffic`). */
    traffic,
    /** Feedback and live quality: `feedback.quality(model, version, since)` is the traffic guard's input. */
    feedback,
    /** Shadow traffic: `shadow.get(model)` has this process's counters; `shadow.idle()` waits for the runs in flight to be stored. */
    shadow,
    /** Where shadow results are stored and compared (the gated shadow test builds its own traffic on it). */
    shadowStore,
    batchWorker,
    notifier,
    /** The periodic drift check (started only when DRIFT_CHECK_INTERVAL_MS > 0). */
    driftWatch,
    /** Resolves once the batch worker has resumed its jobs and takes new ones. */
    batchWorkerStarted,
    handle,
    /** Resolves once every model version is READY or FAILED. */
    modelsLoaded,
    /** Serves graphql-transport-ws on the server's /graphql path. */
    attachWebSocket(server: Server) {
      sockets.push(attachWebSocket(server, yoga, log, { maxPayload: MAX_BODY_BYTES, allowedOrigins: config.allowedOrigins, params: persisted?.params, authenticate: auth.principalFor }));
    },
    /** Work that shutdown would abandon now (logged when its deadline passes). */
    inFlight: () => ({
      generations: generationService.active,
      webSocketOperations: sockets.reduce((n, s) => n + s.operations(), 0),
      webSockets: sockets.reduce((n, s) => n + s.sockets(), 0),
    }),
    /**
     * First step of shutdown: stop the batch worker (its jobs commit their chunk in flight
     * and resume at the next start) and the drift check; refuse new generations and end running ones with a
     * CANCELLED event; complete every other subscription; wait for queries and mutations in
     * flight over WebSocket (HTTP ones are waited for by the server's close); then close WebSockets.
     */
    async drain(): Promise<void> {
      await batchWorker.stop();
      await driftWatch.stop();
      await generationService.close();
      // Subscriptions complete (a final `complete` on WebSocket, `event: complete` on SSE) rather than being cut off.
      bus.close();
      await Promise.all(sockets.map((s) => s.subscriptionsDone()));
      await Promise.all(sockets.map((s) => s.idle()));
      await Promise.all(sockets.map((s) => s.close()));
    },
    /**
     * Last step: wait for history writes, then release sessions and the database.
     * Call after the HTTP server has stopped.
     */
    async close(): Promise<void> {
      await this.drain();
      // Shadow runs of the last predictions finish and are stored while the models and the database are open.
      await shadow.close();
      await predictions.drain();
      await outbox?.close();
      // The history's group commit over this process's life (the bench reads it to report group sizes).
      if (predictions.commitStats) log.info({ groups: predictions.commitStats.groups, rows: predictions.commitStats.rows }, 'history group commit');
      await yoga.dispose();
      await models.close();
      await redis?.close();
      await store.close();
    },
  };
}
