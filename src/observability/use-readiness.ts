import { useReadinessCheck, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { ModelRepository } from '../inference/repository.ts';

/** The body of `/readyz`. */
export interface Readiness {
  /** `ready` (200) once the database (and Redis, when configured) answers and no model version is LOADING; else `not_ready` (503). */
  status: 'ready' | 'not_ready';
  /** `ok`, or `unavailable` (the error itself goes to the log, never to the body). */
  database: 'ok' | 'unavailable';
  /** Only with REDIS_URL: `ok` or `unavailable`. */
  redis?: 'ok' | 'unavailable';
  models: Array<{ name: string; version: number; status: string; error: string | null }>;
}

export interface ReadinessOptions {
  /** @default /readyz */
  endpoint?: string;
  models: ModelRepository;
  /** Resolves when the database answers a query on the history table. */
  pingDatabase: () => Promise<unknown>;
  /** Resolves when Redis answers; absent without REDIS_URL. */
  pingRedis?: () => Promise<unknown>;
  log: Logger;
}

/** `/readyz` as JSON: 200 when ready, 503 while a version is LOADING or the database does not answer. */
export function useReadiness(options: ReadinessOptions): Plugin {
  return useReadinessCheck({
    endpoint: options.endpoint ?? '/readyz',
    check: async ({ fetchAPI }) => {
      let database: Readiness['database'] = 'ok';
      try {
        await options.pingDatabase();
      } catch (error) {
        database = 'unavailable';
        options.log.warn({ err: error }, 'readiness: the database does not answer');
      }
      let redis: Readiness['redis'];
      if (options.pingRedis) {
        redis = 'ok';
        try {
          await options.pingRedis();
        } catch (error) {
          redis = 'unavailable';
          options.log.warn({ err: error }, 'readiness: Redis does not answer');
        }
      }
      const models = options.models
        .list()
        .flatMap((m) => m.versions.map((v) => ({ name: m.name, version: v.version, status: v.status, error: v.error ?? null })));
      const ready = database === 'ok' && redis !== 'unavailable' && models.every((m) => m.status !== 'LOADING');
      const body: Readiness = { status: ready ? 'ready' : 'not_ready', database, ...(redis ? { redis } : {}), models };
      return new fetchAPI.Response(JSON.stringify(body), {
        status: ready ? 200 : 503,
        headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
      });
    },
  });
}
