import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { readPersistedOperations, type PersistedOperations } from './transport/persisted-operations.ts';
import { parseAllowedOrigins, type AllowedOrigins } from './transport/origin-check.ts';

const booleanFlag = z
  .enum(['true', 'false', '1', '0'], { error: 'expected true, false, 1 or 0' })
  .transform((value) => value === 'true' || value === '1');

const wholeNumber = (min: number) =>
  z.coerce
    .number({ error: `expected a whole number >= ${min}` })
    .int({ error: `expected a whole number >= ${min}` })
    .min(min, { error: `expected a whole number >= ${min}` });

const RATE_LIMIT_ITEM = /^(predict|generate|batch|read):(\d+)\/(\d*)(s|m|h)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** `predict:1000/1s,generate:5000/1m,…`: points of work per window for each class named. */
const rateLimits = z
  .string()
  .transform((text, ctx) => {
    const limits: Partial<Record<'predict' | 'generate' | 'batch' | 'read', { points: number; durationS: number }>> = {};
    for (const item of text.split(',').map((part) => part.trim())) {
      const match = RATE_LIMIT_ITEM.exec(item);
      const points = Number(match?.[2]);
      const durationS = Number(match?.[3] || 1) * UNIT_SECONDS[(match?.[4] ?? 's') as keyof typeof UNIT_SECONDS];
      if (!match || points < 1 || durationS < 1) {
        ctx.addIssue({ code: 'custom', message: 'expected class:points/window items such as predict:1000/1s,read:100/1s (classes predict, generate, batch, read; windows in s, m or h)' });
        return z.NEVER;
      }
      limits[match[1] as keyof typeof limits] = { points, durationS };
    }
    return limits;
  });

/** The environment the gateway reads at boot. Every variable is optional. */
const environmentSchema = z.object({
  /** TCP port for HTTP. 0 picks a free port. @default 4000 */
  PORT: z.coerce
    .number({ error: 'expected an integer from 0 to 65535' })
    .int({ error: 'expected an integer from 0 to 65535' })
    .min(0, { error: 'expected an integer from 0 to 65535' })
    .max(65535, { error: 'expected an integer from 0 to 65535' })
    .default(4000),
  /** Interface to bind. @default 127.0.0.1 */
  HOST: z.string().trim().min(1, { error: 'expected a host name or address' }).default('127.0.0.1'),
  /**
   * Prediction history and batch jobs: a SQLite `file:` URL, or a PostgreSQL
   * `postgresql://` (or `postgres://`) URL. @default file:./data/gateway.db
   */
  DATABASE_URL: z
    .string()
    .regex(/^(file:|postgres(ql)?:\/\/).+/, { error: 'expected a SQLite URL such as file:./data/gateway.db or a PostgreSQL URL such as postgresql://user@host:5432/gateway' })
    .default('file:./data/gateway.db'),
  /** Triton-style model repository folder. @default models */
  MODEL_REPOSITORY: z.string().min(1, { error: 'expected a folder path' }).default('models'),
  /**
   * Hot reload (Triton's poll mode): every this many ms the repository is scanned again; new
   * version folders are loaded, warmed up (and verified) before they take traffic, removed ones
   * drained and unloaded, changed files and model.json re-read. 0 scans only at start. @default 0
   */
  MODEL_POLL_INTERVAL_MS: wholeNumber(0).default(0),
  /**
   * Verified swap: a version loaded while another version of its model serves is first run on
   * the model's newest this-many stored requests, and its agreement with the served answers is
   * reported (modelEvents VERIFIED; model.json `verify` may require a minimum). 0: no replay. @default 100
   */
  MODEL_REPLAY_REQUESTS: wholeNumber(0).default(100),
  /**
   * SQLite only: `synchronous` for history writes: FULL survives power loss, NORMAL only a
   * process crash (and commits faster). @default FULL
   */
  SQLITE_SYNCHRONOUS: z.enum(['FULL', 'NORMAL'], { error: 'expected FULL or NORMAL' }).default('FULL'),
  /** pino level. @default info */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * `json`: one JSON object a line; `pretty`: pino-pretty's lines (the package must be
   * installed); `auto`: pretty when the output is a terminal, NODE_ENV is not `production`
   * and pino-pretty is installed, else JSON. @default auto
   */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty'], { error: 'expected auto, json or pretty' }).default('auto'),
  /** Serve GraphiQL to browsers on GET /graphql. @default true */
  GRAPHIQL: booleanFlag.default(true),
  /**
   * Answer introspection (`__schema`, `__type`); false refuses it with INTROSPECTION_DISABLED.
   * Not tied to NODE_ENV: the schema is this gateway's manual (GraphiQL's docs pane). @default true
   */
  INTROSPECTION: booleanFlag.default(true),
  /**
   * `off`: no API keys are asked for or read; every caller may do and see everything (the
   * embedded quick start; logged as a warning at start). `required`: every operation needs a
   * valid key (`npm run gateway -- keys create`), with the scope it needs. @default off
   */
  AUTH_MODE: z.enum(['off', 'required'], { error: 'expected off or required' }).default('off'),
  /**
   * Most an operation may cost (schema/cost.ts: fields, page sizes, tensor elements,
   * `maxTokens`); a costlier one is refused before it runs with QUERY_TOO_COMPLEX. @default 20000
   */
  MAX_QUERY_COST: wholeNumber(1).default(20_000),
  /**
   * A JSON file `{ "<id>": "<GraphQL document>", … }`: when set, only these operations run,
   * named by `documentId` or `extensions.persistedQuery.sha256Hash`. @default unset (any operation)
   */
  PERSISTED_OPERATIONS: z.string().min(1).optional(),
  /**
   * Origins (comma separated, or `*`) whose pages may open a WebSocket besides the gateway's
   * own host. @default unset (same host only)
   */
  ALLOWED_ORIGINS: z.string().optional(),
  /** Prometheus metrics on GET /metrics; false: no /metrics (404) and no metric is kept. @default true */
  METRICS: booleanFlag.default(true),
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise). @default unset */
  METRICS_TOKEN: z.string().trim().min(16, { error: 'expected a token of at least 16 characters' }).optional(),
  /** Dynamic batching of concurrent predictions and group commit of their rows. @default true */
  BATCHING: booleanFlag.default(true),
  /** Generations decoding at once; more get TOO_MANY_REQUESTS. @default 32 */
  MAX_GENERATIONS: z.coerce
    .number({ error: 'expected a whole number >= 1' })
    .int({ error: 'expected a whole number >= 1' })
    .min(1, { error: 'expected a whole number >= 1' })
    .default(32),
  /**
   * Gateway processes on this machine sharing the port (node:cluster, connections handed out
   * round-robin). 1: one process, no cluster. @default 1
   */
  WORKERS: wholeNumber(1).default(1),
  /** How long shutdown waits for requests in flight before closing their connections. @default 10000 */
  SHUTDOWN_TIMEOUT_MS: z.coerce
    .number({ error: 'expected a number of milliseconds' })
    .int({ error: 'expected a whole number of milliseconds' })
    .min(0, { error: 'expected a whole number of milliseconds' })
    .default(10_000),
  /** Rows per batch job at most; a bigger submit is BAD_USER_INPUT before anything is queued. @default 1000000 */
  MAX_BATCH_ROWS: wholeNumber(1).default(1_000_000),
  /** Batch jobs running at once in this process. @default 1 */
  BATCH_CONCURRENCY: wholeNumber(1).default(1),
  /** Rows per batch chunk: scored together and committed in one transaction with the job's progress. @default 1000 */
  BATCH_CHUNK_ROWS: wholeNumber(1).default(1000),
  /** Per attempt of a batch job's end-of-job POST to its notifyUrl. @default 5000 */
  BATCH_NOTIFY_TIMEOUT_MS: wholeNumber(1).default(5000),
  /** Attempts of that POST, the first included (backoff 1 s, doubling). @default 3 */
  BATCH_NOTIFY_ATTEMPTS: wholeNumber(1).default(3),
  /**
   * Redis for what replicas must share: subscription events reach subscribers on every
   * replica. Unset: everything stays in this process. @default unset
   */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/.+/, { error: 'expected a Redis URL such as redis://127.0.0.1:6379' })
    .optional(),
  /**
   * With REDIS_URL: how long a replica holds a batch job without renewing its lease; a
   * replica that dies loses its jobs to another after about twice this. @default 30000
   */
  BATCH_LEASE_MS: wholeNumber(100).default(30_000),
  /**
   * When events cross processes (REDIS_URL or WORKERS > 1): a committed prediction whose
   * event is not confirmed after this long is taken for a crashed process's, and published
   * by the outbox sweeper, which looks every half of it. @default 10000
   */
  OUTBOX_GRACE_MS: wholeNumber(100).default(10_000),
  /**
   * Per-caller budgets of work (an API key, else the client address), by operation class:
   * rows predicted, tokens generated (`maxTokens`), batch rows, read fields. Unset: no limit.
   * Shared by every replica through Redis when REDIS_URL is set. @default unset
   */
  RATE_LIMITS: rateLimits.optional(),
  /** The client address is the last X-Forwarded-For entry (set this behind nginx or another proxy). @default false */
  TRUST_PROXY: booleanFlag.default(false),
  /** Prefix of every Redis channel and key this gateway uses (deployments sharing one Redis use different ones). @default gateway: */
  REDIS_PREFIX: z.string().min(1, { error: 'expected a non-empty prefix' }).default('gateway:'),
  /**
   * Bytes of all files of one GraphQL multipart request together (they stream to disk;
   * other requests keep the 4 MB body limit). @default 268435456 (256 MB)
   */
  MAX_UPLOAD_BYTES: z.coerce
    .number({ error: 'expected a whole number of bytes >= 1' })
    .int({ error: 'expected a whole number of bytes >= 1' })
    .min(1, { error: 'expected a whole number of bytes >= 1' })
    .default(256 * 1024 * 1024),
  /** Folder for uploaded files while their request runs. @default <os temp dir>/gateway-uploads */
  UPLOAD_DIR: z.string().min(1, { error: 'expected a folder path' }).optional(),
  /**
   * Drift monitoring (src/monitoring/): how often each model version with a training reference
   * in its model.json is checked for drift; 0: never (driftAlerts stays silent;
   * `ModelVersion.drift` still answers). @default 10000
   */
  DRIFT_CHECK_INTERVAL_MS: wholeNumber(0).default(10_000),
  /** A feature whose population stability index rises to this or above raises a driftAlerts event. @default 0.2 */
  DRIFT_PSI_THRESHOLD: z.coerce
    .number({ error: 'expected a number greater than 0' })
    .positive({ error: 'expected a number greater than 0' })
    .refine(Number.isFinite, { error: 'expected a number greater than 0' })
    .default(0.2),
  /** Newest stored predictions of a model version that each periodic check reads. @default 500 */
  DRIFT_WINDOW: wholeNumber(1).default(500),
  /** Feature rows a check needs before it judges (fewer: no alert, nothing changes). @default 100 */
  DRIFT_MIN_SAMPLES: wholeNumber(1).default(100),
  /**
   * Shadow traffic (setShadow): shadow runs of this process started and not yet answered, at
   * most; a request mirrored beyond it is not run on the shadow (dropped and counted), never
   * queued. @default 64
   */
  SHADOW_MAX_OUTSTANDING: wholeNumber(1).default(64),
});

export type Config = Readonly<{
  port: number;
  host: string;
  databaseUrl: string;
  sqliteSynchronous: 'FULL' | 'NORMAL';
  modelRepository: string;
  /** 0: the repository is scanned at start only. */
  modelPollIntervalMs: number;
  modelReplayRequests: number;
  logLevel: z.infer<typeof environmentSchema>['LOG_LEVEL'];
  logFormat: 'auto' | 'json' | 'pretty';
  graphiql: boolean;
  introspection: boolean;
  maxQueryCost: number;
  /** Unset: any operation runs. */
  persistedOperations: PersistedOperations | undefined;
  /** Origins allowed to open WebSockets besides the request's own host. */
  allowedOrigins: AllowedOrigins;
  /** API keys: `off` (default) or `required` (src/auth/). */
  authMode: 'off' | 'required';
  metrics: boolean;
  /** Unset: /metrics is open (bind it to a private interface or put it behind the proxy). */
  metricsToken: string | undefined;
  /** Processes sharing the port; 1 runs no cluster. */
  workers: number;
  shutdownTimeoutMs: number;
  maxGenerations: number;
  batching: boolean;
  batch: Readonly<{ maxRows: number; concurrency: number; chunkRows: number; notifyTimeoutMs: number; notifyAttempts: number; leaseMs: number }>;
  maxUploadBytes: number;
  /** Unset: events stay in this process. */
  redisUrl: string | undefined;
  redisPrefix: string;
  /** Per-class budgets; empty: no rate limiting. */
  rateLimits: Readonly<Partial<Record<'predict' | 'generate' | 'batch' | 'read', Readonly<{ points: number; durationS: number }>>>>;
  trustProxy: boolean;
  /** Outbox grace period (src/pubsub/outbox.ts). */
  outboxGraceMs: number;
  /** Unset: `gateway-uploads` in the OS temp folder. */
  uploadDir: string | undefined;
  /** Periodic drift checks (src/monitoring/drift-watch.ts); `checkIntervalMs` 0: off. */
  drift: Readonly<{ checkIntervalMs: number; psiThreshold: number; window: number; minSamples: number }>;
  /** Shadow runs in flight at most (src/serving/shadow.ts); more are dropped and counted. */
  shadowMaxOutstanding: number;
}>;

/** Thrown when the environment does not describe a runnable gateway; the message is one line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Validates the environment into a frozen Config. Variables set in `env` win over
 * those in the optional `.env` file named by `envFile`.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, envFile?: string): Config {
  const fromFile = envFile && existsSync(envFile) ? parseEnv(readFileSync(envFile, 'utf8')) : {};
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [key, value] of Object.entries(env)) if (value !== undefined) merged[key] = value;
  // An empty variable means "not set", as in most shells' `VAR= cmd`.
  for (const key of Object.keys(merged)) if (merged[key] === '') delete merged[key];

  const parsed = environmentSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}: ${issue.message}, got ${JSON.stringify(merged[name])}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  /** Variables whose value is checked beyond its form (a file to read, a list to parse). */
  const checked = <T>(name: string, read: () => T): T => {
    try {
      return read();
    } catch (error) {
      throw new ConfigError(`Invalid configuration: ${name}: ${(error as Error).message}`);
    }
  };
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    modelRepository: e.MODEL_REPOSITORY,
    modelPollIntervalMs: e.MODEL_POLL_INTERVAL_MS,
    modelReplayRequests: e.MODEL_REPLAY_REQUESTS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    graphiql: e.GRAPHIQL,
    introspection: e.INTROSPECTION,
    authMode: e.AUTH_MODE,
    maxQueryCost: e.MAX_QUERY_COST,
    persistedOperations: e.PERSISTED_OPERATIONS === undefined ? undefined : checked('PERSISTED_OPERATIONS', () => readPersistedOperations(e.PERSISTED_OPERATIONS!)),
    allowedOrigins: e.ALLOWED_ORIGINS === undefined ? [] : checked('ALLOWED_ORIGINS', () => parseAllowedOrigins(e.ALLOWED_ORIGINS!)),
    metrics: e.METRICS,
    metricsToken: e.METRICS_TOKEN,
    workers: e.WORKERS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxGenerations: e.MAX_GENERATIONS,
    batching: e.BATCHING,
    batch: Object.freeze({
      maxRows: e.MAX_BATCH_ROWS,
      concurrency: e.BATCH_CONCURRENCY,
      chunkRows: e.BATCH_CHUNK_ROWS,
      notifyTimeoutMs: e.BATCH_NOTIFY_TIMEOUT_MS,
      notifyAttempts: e.BATCH_NOTIFY_ATTEMPTS,
      leaseMs: e.BATCH_LEASE_MS,
    }),
    maxUploadBytes: e.MAX_UPLOAD_BYTES,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    outboxGraceMs: e.OUTBOX_GRACE_MS,
    rateLimits: Object.freeze(e.RATE_LIMITS ?? {}),
    trustProxy: e.TRUST_PROXY,
    uploadDir: e.UPLOAD_DIR,
    drift: Object.freeze({
      checkIntervalMs: e.DRIFT_CHECK_INTERVAL_MS,
      psiThreshold: e.DRIFT_PSI_THRESHOLD,
      window: e.DRIFT_WINDOW,
      minSamples: e.DRIFT_MIN_SAMPLES,
    }),
    shadowMaxOutstanding: e.SHADOW_MAX_OUTSTANDING,
  });
}
