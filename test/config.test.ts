import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('config', () => {
  it('has defaults for everything', () => {
    expect(loadConfig({})).toEqual({
      port: 4000,
      host: '127.0.0.1',
      databaseUrl: 'file:./data/gateway.db',
      sqliteSynchronous: 'FULL',
      modelRepository: 'models',
      modelPollIntervalMs: 0,
      modelReplayRequests: 100,
      logLevel: 'info',
      logFormat: 'auto',
      graphiql: true,
      introspection: true,
      authMode: 'off',
      maxQueryCost: 20_000,
      persistedOperations: undefined,
      allowedOrigins: [],
      metrics: true,
      metricsToken: undefined,
      workers: 1,
      shutdownTimeoutMs: 10_000,
      maxGenerations: 32,
      batching: true,
      batch: { maxRows: 1_000_000, concurrency: 1, chunkRows: 1000, notifyTimeoutMs: 5000, notifyAttempts: 3, leaseMs: 30_000 },
      maxUploadBytes: 268_435_456,
      redisUrl: undefined,
      redisPrefix: 'gateway:',
      outboxGraceMs: 10_000,
      rateLimits: {},
      trustProxy: false,
      uploadDir: undefined,
      drift: { checkIntervalMs: 10_000, psiThreshold: 0.2, window: 500, minSamples: 100 },
      shadowMaxOutstanding: 64,
    });
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it.each([
    [{ PORT: 'abc' }, 'Invalid configuration: PORT: expected an integer from 0 to 65535, got "abc"'],
    [{ PORT: '70000' }, 'Invalid configuration: PORT: expected an integer from 0 to 65535, got "70000"'],
    [{ DATABASE_URL: 'mysql://x' }, 'Invalid configuration: DATABASE_URL: expected a SQLite URL such as file:./data/gateway.db or a PostgreSQL URL such as postgresql://user@host:5432/gateway, got "mysql://x"'],
    [{ DATABASE_URL: 'postgresql://' }, /^Invalid configuration: DATABASE_URL: expected a SQLite URL .*, got "postgresql:\/\/"$/],
    [{ GRAPHIQL: 'yes' }, 'Invalid configuration: GRAPHIQL: expected true, false, 1 or 0, got "yes"'],
    [{ INTROSPECTION: 'off' }, 'Invalid configuration: INTROSPECTION: expected true, false, 1 or 0, got "off"'],
    [{ AUTH_MODE: 'on' }, 'Invalid configuration: AUTH_MODE: expected off or required, got "on"'],
    [{ METRICS: 'no' }, 'Invalid configuration: METRICS: expected true, false, 1 or 0, got "no"'],
    [{ METRICS_TOKEN: 'short' }, 'Invalid configuration: METRICS_TOKEN: expected a token of at least 16 characters, got "short"'],
    [{ LOG_LEVEL: 'loud' }, /^Invalid configuration: LOG_LEVEL: .*"loud"$/],
    [{ LOG_FORMAT: 'xml' }, 'Invalid configuration: LOG_FORMAT: expected auto, json or pretty, got "xml"'],
    [{ MAX_GENERATIONS: '0' }, 'Invalid configuration: MAX_GENERATIONS: expected a whole number >= 1, got "0"'],
    [{ SQLITE_SYNCHRONOUS: 'OFF' }, 'Invalid configuration: SQLITE_SYNCHRONOUS: expected FULL or NORMAL, got "OFF"'],
    [{ MAX_UPLOAD_BYTES: '1.5' }, 'Invalid configuration: MAX_UPLOAD_BYTES: expected a whole number of bytes >= 1, got "1.5"'],
    [{ MAX_UPLOAD_BYTES: '0' }, 'Invalid configuration: MAX_UPLOAD_BYTES: expected a whole number of bytes >= 1, got "0"'],
    [{ SHUTDOWN_TIMEOUT_MS: '-1' }, 'Invalid configuration: SHUTDOWN_TIMEOUT_MS: expected a whole number of milliseconds, got "-1"'],
    [{ WORKERS: '0' }, 'Invalid configuration: WORKERS: expected a whole number >= 1, got "0"'],
    [{ WORKERS: '2.5' }, 'Invalid configuration: WORKERS: expected a whole number >= 1, got "2.5"'],
    [{ MAX_BATCH_ROWS: '0' }, 'Invalid configuration: MAX_BATCH_ROWS: expected a whole number >= 1, got "0"'],
    [{ BATCH_CHUNK_ROWS: '1.5' }, 'Invalid configuration: BATCH_CHUNK_ROWS: expected a whole number >= 1, got "1.5"'],
    [{ RATE_LIMITS: 'predict:10' }, /^Invalid configuration: RATE_LIMITS: expected class:points\/window items .*, got "predict:10"$/],
    [{ RATE_LIMITS: 'write:10/1s' }, /^Invalid configuration: RATE_LIMITS: expected class:points\/window items .*, got "write:10\/1s"$/],
    [{ RATE_LIMITS: 'read:0/1s' }, /^Invalid configuration: RATE_LIMITS: expected class:points\/window items/],
    [{ MODEL_POLL_INTERVAL_MS: '-5' }, 'Invalid configuration: MODEL_POLL_INTERVAL_MS: expected a whole number >= 0, got "-5"'],
    [{ MODEL_REPLAY_REQUESTS: 'all' }, 'Invalid configuration: MODEL_REPLAY_REQUESTS: expected a whole number >= 0, got "all"'],
    [{ OUTBOX_GRACE_MS: '50' }, 'Invalid configuration: OUTBOX_GRACE_MS: expected a whole number >= 100, got "50"'],
    [{ DRIFT_CHECK_INTERVAL_MS: '-1' }, 'Invalid configuration: DRIFT_CHECK_INTERVAL_MS: expected a whole number >= 0, got "-1"'],
    [{ DRIFT_CHECK_INTERVAL_MS: '1.5' }, 'Invalid configuration: DRIFT_CHECK_INTERVAL_MS: expected a whole number >= 0, got "1.5"'],
    [{ DRIFT_PSI_THRESHOLD: '0' }, 'Invalid configuration: DRIFT_PSI_THRESHOLD: expected a number greater than 0, got "0"'],
    [{ DRIFT_PSI_THRESHOLD: 'high' }, 'Invalid configuration: DRIFT_PSI_THRESHOLD: expected a number greater than 0, got "high"'],
    [{ DRIFT_PSI_THRESHOLD: 'Infinity' }, 'Invalid configuration: DRIFT_PSI_THRESHOLD: expected a number greater than 0, got "Infinity"'],
    [{ DRIFT_WINDOW: '0' }, 'Invalid configuration: DRIFT_WINDOW: expected a whole number >= 1, got "0"'],
    [{ DRIFT_MIN_SAMPLES: '0' }, 'Invalid configuration: DRIFT_MIN_SAMPLES: expected a whole number >= 1, got "0"'],
    [{ SHADOW_MAX_OUTSTANDING: '0' }, 'Invalid configuration: SHADOW_MAX_OUTSTANDING: expected a whole number >= 1, got "0"'],
    [{ SHADOW_MAX_OUTSTANDING: 'many' }, 'Invalid configuration: SHADOW_MAX_OUTSTANDING: expected a whole number >= 1, got "many"'],
    [{ REDIS_URL: 'localhost:6379' }, 'Invalid configuration: REDIS_URL: expected a Redis URL such as redis://127.0.0.1:6379, got "localhost:6379"'],
    [{ MAX_QUERY_COST: '0' }, 'Invalid configuration: MAX_QUERY_COST: expected a whole number >= 1, got "0"'],
    [{ ALLOWED_ORIGINS: 'app.example.com' }, 'Invalid configuration: ALLOWED_ORIGINS: expected origins such as https://app.example.com (scheme, host and port only), or *, got `app.example.com`'],
    [{ ALLOWED_ORIGINS: 'https://app.example.com/path' }, /^Invalid configuration: ALLOWED_ORIGINS: .*got `https:\/\/app.example.com\/path`$/],
    [{ PERSISTED_OPERATIONS: '/nonexistent/operations.json' }, 'Invalid configuration: PERSISTED_OPERATIONS: cannot read `/nonexistent/operations.json`: ENOENT'],
  ])('rejects %j in one line', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads INTROSPECTION, on unless set false, whatever NODE_ENV says', () => {
    expect(loadConfig({ INTROSPECTION: 'false' }).introspection).toBe(false);
    expect(loadConfig({ INTROSPECTION: '0' }).introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production' }).introspection).toBe(true);
  });

  it('reads AUTH_MODE, off unless set required', () => {
    expect(loadConfig({ AUTH_MODE: 'required' }).authMode).toBe('required');
    expect(loadConfig({ AUTH_MODE: 'off' }).authMode).toBe('off');
    expect(loadConfig({ NODE_ENV: 'production' }).authMode).toBe('off');
  });

  it('reads METRICS (on by default) and METRICS_TOKEN (unset by default)', () => {
    expect(loadConfig({})).toMatchObject({ metrics: true, metricsToken: undefined });
    expect(loadConfig({ METRICS: 'false' }).metrics).toBe(false);
    expect(loadConfig({ METRICS_TOKEN: 'a-token-of-20-chars!' }).metricsToken).toBe('a-token-of-20-chars!');
  });

  it('reads LOG_FORMAT', () => {
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
  });

  it('reads RATE_LIMITS: points per window by class, windows in seconds, minutes or hours', () => {
    expect(loadConfig({ RATE_LIMITS: 'predict:1000/1s, generate:5000/2m,batch:100000/1h,read:50/s' }).rateLimits).toEqual({
      predict: { points: 1000, durationS: 1 },
      generate: { points: 5000, durationS: 120 },
      batch: { points: 100_000, durationS: 3600 },
      read: { points: 50, durationS: 1 },
    });
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
  });

  it('reads the drift settings; DRIFT_CHECK_INTERVAL_MS=0 turns the checks off', () => {
    expect(loadConfig({ DRIFT_CHECK_INTERVAL_MS: '250', DRIFT_PSI_THRESHOLD: '0.1', DRIFT_WINDOW: '50', DRIFT_MIN_SAMPLES: '20' }).drift).toEqual({ checkIntervalMs: 250, psiThreshold: 0.1, window: 50, minSamples: 20 });
    expect(loadConfig({ DRIFT_CHECK_INTERVAL_MS: '0' }).drift.checkIntervalMs).toBe(0);
  });

  it('reads SHADOW_MAX_OUTSTANDING', () => {
    expect(loadConfig({ SHADOW_MAX_OUTSTANDING: '3' }).shadowMaxOutstanding).toBe(3);
  });

  it('reads WORKERS', () => {
    expect(loadConfig({ WORKERS: '4' }).workers).toBe(4);
  });

  it('takes SQLite and PostgreSQL database URLs', () => {
    for (const url of ['file:./data/gateway.db', 'postgresql://gateway@db.internal:5432/history', 'postgres://u:p@127.0.0.1/gateway?sslmode=require']) {
      expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    }
  });

  it('reads the upload limit and folder', () => {
    expect(loadConfig({ MAX_UPLOAD_BYTES: '1048576', UPLOAD_DIR: '/var/tmp/uploads' })).toMatchObject({ maxUploadBytes: 1_048_576, uploadDir: '/var/tmp/uploads' });
  });

  it('reads MAX_QUERY_COST and ALLOWED_ORIGINS (lower-cased, without a trailing slash; * allows any)', () => {
    expect(loadConfig({ MAX_QUERY_COST: '500' }).maxQueryCost).toBe(500);
    expect(loadConfig({ ALLOWED_ORIGINS: 'https://App.example.com/, http://localhost:5173' }).allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(loadConfig({ ALLOWED_ORIGINS: 'https://app.example.com,*' }).allowedOrigins).toBe('*');
  });

  describe('PERSISTED_OPERATIONS', () => {
    const file = (text: string) => {
      const path = join(mkdtempSync(join(tmpdir(), 'persisted-')), 'operations.json');
      writeFileSync(path, text);
      return path;
    };

    it('reads the id → document map', () => {
      const path = file(JSON.stringify({ abc: '{ models { name } }', def: 'mutation P { predict(input: { model: "iris", features: [1, 2, 3, 4] }) { id } }' }));
      expect([...loadConfig({ PERSISTED_OPERATIONS: path }).persistedOperations!.keys()]).toEqual(['abc', 'def']);
    });

    it.each([
      ['bad JSON', '{ "abc": ', /^Invalid configuration: PERSISTED_OPERATIONS: `.*operations\.json` is not JSON: .*$/],
      ['an array', '["{ models { name } }"]', /^Invalid configuration: PERSISTED_OPERATIONS: `.*` must hold one JSON object of id → GraphQL document$/],
      ['a value that is not a string', '{ "abc": 1 }', /^Invalid configuration: PERSISTED_OPERATIONS: `.*`: the value of `abc` is not a string$/],
      ['a document that does not parse', '{ "abc": "{ models { name }" }', /^Invalid configuration: PERSISTED_OPERATIONS: `.*`: the document of `abc` does not parse: Syntax Error: Expected Name, found <EOF>\.$/],
    ])('refuses %s in one line', (_, text, message) => {
      const env = { PERSISTED_OPERATIONS: file(text) };
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
      let thrown: unknown;
      try {
        loadConfig(env);
      } catch (error) {
        thrown = error;
      }
      expect((thrown as Error).message).not.toContain('\n');
    });
  });

  it('reads .env, with the real environment winning', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'env-')), '.env');
    writeFileSync(file, 'PORT=5000\nGRAPHIQL=false\nHOST=0.0.0.0\n');
    const config = loadConfig({ HOST: '127.0.0.2' }, file);
    expect(config).toMatchObject({ port: 5000, graphiql: false, host: '127.0.0.2' });
  });
});
