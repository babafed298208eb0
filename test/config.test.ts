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
      logLevel: 'info',
      logFormat: 'auto',
      graphiql: true,
      introspection: true,
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
      uploadDir: undefined,
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
    [{ OUTBOX_GRACE_MS: '50' }, 'Invalid configuration: OUTBOX_GRACE_MS: expected a whole number >= 100, got "50"'],
    [{ REDIS_URL: 'localhost:6379' }, 'Invalid configuration: REDIS_URL: expected a Redis URL such as redis://127.0.0.1:6379, got "localhost:6379"'],
  ])('rejects %j in one line', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads INTROSPECTION, on unless set false, whatever NODE_ENV says', () => {
    expect(loadConfig({ INTROSPECTION: 'false' }).introspection).toBe(false);
    expect(loadConfig({ INTROSPECTION: '0' }).introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production' }).introspection).toBe(true);
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

  it('reads .env, with the real environment winning', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'env-')), '.env');
    writeFileSync(file, 'PORT=5000\nGRAPHIQL=false\nHOST=0.0.0.0\n');
    const config = loadConfig({ HOST: '127.0.0.2' }, file);
    expect(config).toMatchObject({ port: 5000, graphiql: false, host: '127.0.0.2' });
  });
});
