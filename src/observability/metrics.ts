import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { InferenceObserver } from '../inference/stats.ts';
import type { Model } from '../inference/types.ts';

/** Seconds buckets shared by the duration histograms: 0.5 ms (one small ONNX run) to 10 s (a slow commit). */
const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Requests stacked in one ONNX run: powers of two up to the largest `max_batch_size` worth having. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/**
 * Distinct operation names kept as label values; later new names are counted as `__other__`.
 * Operation names are chosen by clients: unbounded, they would grow the series (and the
 * scrape) without end.
 */
export const MAX_OPERATION_NAMES = 200;
export const OTHER_OPERATION = '__other__';

/** How an operation ended, as metrics label it. */
export interface OperationOutcome {
  /** `null` for anonymous operations (labelled ``). */
  operationName: string | null;
  /** query, mutation, subscription; `null` when the document never parsed (labelled ``). */
  operationType: string | null;
  /** The code of the first error; undefined for a success. */
  errorCode?: string;
  /** Execution time; undefined for an operation refused before execution (not observed in the histogram). */
  seconds?: number;
}

/** What the process's live state offers to gauges at scrape time (read, never pushed). */
export interface MetricSources {
  /** Generations decoding now. */
  generations(): number;
  /** Waiting work by queue: `lane` online/bulk requests per model version, history rows not yet committed, subscriber events not yet sent. */
  queues(): Array<{ queue: 'inference' | 'history' | 'subscriber'; model?: string; version?: number; lane?: string; depth: number }>;
}

/**
 * The gateway's Prometheus metrics, or a set of no-ops when METRICS=false (so the hooks
 * cost a function call and nothing else). Each method is the one way its metric changes;
 * names and labels are listed in the README ("Logs and metrics").
 */
export interface GatewayMetrics {
  /** Undefined when metrics are off. */
  readonly registry: Registry | undefined;
  /** One GraphQL operation answered (or a subscription ended): counter, and the duration histogram when it executed. */
  operation(outcome: OperationOutcome): void;
  /** A subscription's stream started (+1) or ended (-1). */
  subscriptionActive(delta: 1 | -1): void;
  /** Rows committed to the history in one transaction, and how long the commit took. */
  historyCommit(rows: number, seconds: number): void;
  /** A request refused by the rate limiter; `operationClass` is the limiter's bucket (e.g. `predict`). */
  rateLimited(operationClass: string): void;
  /** A model event (LOADING, READY, FAILED, ROLLED_BACK, …), as `modelEvents` subscribers hear it: alert on FAILED and ROLLED_BACK. */
  modelEvent(model: string, type: string): void;
  /** A prediction mirrored to a shadow version: `ok` (answered), `failed` (stored with its error), or `dropped` (SHADOW_MAX_OUTSTANDING). */
  shadowRun(model: string, version: number, outcome: 'ok' | 'failed' | 'dropped'): void;
  /** Observers of inference runs, one per model version (labels resolved once). */
  readonly inference: InferenceObserver | undefined;
  /** Connects the gauges to live state; called once the app has built it. */
  observe(sources: MetricSources): void;
}

/** Metrics off: every hook is a no-op. */
export const noMetrics: GatewayMetrics = Object.freeze({
  registry: undefined,
  inference: undefined,
  operation: () => {},
  subscriptionActive: () => {},
  historyCommit: () => {},
  rateLimited: () => {},
  modelEvent: () => {},
  shadowRun: () => {},
  observe: () => {},
});

/**
 * A fresh registry (one per app: tests build several apps in one process) with process
 * metrics (`collectDefaultMetrics`) and the gateway's own. Durations are Histograms, never
 * Summaries: a histogram observation is a bucket increment, a summary's keeps a sliding
 * quantile sketch per series (and summaries cannot be added up across workers).
 */
export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const operations = new Counter({
    name: 'gateway_graphql_operations_total',
    help: 'GraphQL operations answered (subscriptions: counted when they end), by name, type, outcome (ok, error) and the first error code.',
    labelNames: ['operation_name', 'operation_type', 'outcome', 'code'] as const,
    registers,
  });
  const operationSeconds = new Histogram({
    name: 'gateway_graphql_operation_duration_seconds',
    help: 'Execution time of queries and mutations (from the start of execution to the result), by name, type and outcome.',
    labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const perVersion = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames: ['model', 'version'] as const, buckets, registers });
  const inferenceSeconds = perVersion('gateway_inference_duration_seconds', 'Time of one ONNX Runtime run (a predict batch or a generation step), by model and version.', SECONDS_BUCKETS);
  const batchSize = perVersion('gateway_inference_batch_size', 'predict requests served by one ONNX run (1 when unbatched), by model and version.', BATCH_BUCKETS);
  const written = new Counter({ name: 'gateway_predictions_written_total', help: 'Prediction rows committed to the history (predict and generate).', registers });
  const commitSeconds = new Histogram({
    name: 'gateway_database_write_duration_seconds',
    help: 'Time of one history commit (one group of rows in one transaction).',
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const subscriptions = new Gauge({ name: 'gateway_active_subscriptions', help: 'GraphQL subscriptions streaming now (HTTP SSE and WebSocket).', registers });
  const rateLimited = new Counter({
    name: 'gateway_rate_limited_total',
    help: 'Requests refused by the rate limiter (RATE_LIMITED), by operation class.',
    labelNames: ['operation_class'] as const,
    registers,
  });
  let sources: MetricSources | undefined;
  const modelEvents = new Counter({
    name: 'gateway_model_events_total',
    help: 'Model lifecycle and traffic events (the modelEvents subscription), by model and type (LOADING, READY, FAILED, UNLOADED, VERIFIED, TRAFFIC, ROLLED_BACK).',
    labelNames: ['model', 'type'],
    registers,
  });
  const shadowRuns = new Counter({
    name: 'gateway_shadow_runs_total',
    help: 'Predictions mirrored to a shadow version (setShadow), by model, shadow version and outcome (ok, failed, dropped).',
    labelNames: ['model', 'version', 'outcome'],
    registers,
  });
  new Gauge({
    name: 'gateway_active_generations',
    help: 'Generations decoding now.',
    registers,
    collect() {
      this.set(sources?.generations() ?? 0);
    },
  });
  new Gauge({
    name: 'gateway_queue_depth',
    help: 'Work waiting now: inference (requests waiting for a batch, by model, version and lane), history (rows waiting for a commit), subscriber (events waiting to be sent).',
    labelNames: ['queue', 'model', 'version', 'lane'] as const,
    registers,
    collect() {
      this.reset();
      for (const q of sources?.queues() ?? []) {
        this.inc({ queue: q.queue, model: q.model ?? '', version: q.version === undefined ? '' : String(q.version), lane: q.lane ?? '' }, q.depth);
      }
    },
  });

  /** Labelled children by name, type and code: prom-client hashes a label object on every call otherwise. */
  const seriesByKey = new Map<string, { count: { inc(): void }; seconds: { observe(value: number): void } }>();
  const names = new Set<string>();
  const nameLabel = (name: string | null) => {
    if (name === null) return '';
    if (names.has(name)) return name;
    if (names.size >= MAX_OPERATION_NAMES) return OTHER_OPERATION;
    names.add(name);
    return name;
  };

  return {
    registry,
    operation({ operationName, operationType, errorCode, seconds }) {
      const name = nameLabel(operationName);
      const key = `${name}\n${operationType ?? ''}\n${errorCode ?? ''}`;
      let series = seriesByKey.get(key);
      if (!series) {
        const labels = { operation_name: name, operation_type: operationType ?? '', outcome: errorCode ? 'error' : 'ok' };
        series = { count: operations.labels({ ...labels, code: errorCode ?? '' }), seconds: operationSeconds.labels(labels) };
        seriesByKey.set(key, series);
      }
      series.count.inc();
      if (seconds !== undefined) series.seconds.observe(seconds);
    },
    subscriptionActive: (delta) => subscriptions.inc(delta),
    historyCommit(rows, seconds) {
      written.inc(rows);
      commitSeconds.observe(seconds);
    },
    rateLimited: (operationClass) => rateLimited.inc({ operation_class: operationClass }),
    modelEvent: (model, type) => modelEvents.inc({ model, type }),
    shadowRun: (model, version, outcome) => shadowRuns.inc({ model, version: String(version), outcome }),
    inference: {
      forVersion(model, version) {
        const labels = { model, version: String(version) };
        const run = inferenceSeconds.labels(labels);
        const batch = batchSize.labels(labels);
        return { run: (seconds) => run.observe(seconds), batch: (requests) => batch.observe(requests) };
      },
    },
    observe(next) {
      sources = next;
    },
  };
}

/** The gauges' view of a running gateway: what each queue holds and how many generations run, read at scrape time. */
export function gatewaySources(deps: {
  models: { list(): ReadonlyArray<Pick<Model, 'name' | 'versions'>> };
  history: { readonly waiting: number };
  generations: { readonly active: number };
  subscribers: () => ReadonlyArray<{ bufferedEvents: number }>;
}): MetricSources {
  return {
    generations: () => deps.generations.active,
    queues: () => [
      ...deps.models.list().flatMap((m) =>
        m.versions.flatMap((v) =>
          v.served
            ? [
                { queue: 'inference' as const, model: m.name, version: v.version, lane: 'online', depth: v.served.stats.waiting },
                { queue: 'inference' as const, model: m.name, version: v.version, lane: 'bulk', depth: v.served.stats.bulkWaiting },
              ]
            : [],
        ),
      ),
      { queue: 'history', depth: deps.history.waiting },
      { queue: 'subscriber', depth: deps.subscribers().reduce((n, s) => n + s.bufferedEvents, 0) },
    ],
  };
}
