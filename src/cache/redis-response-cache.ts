import type { Redis } from 'ioredis';
import type { TensorData } from '../inference/types.ts';
import type { ResponseCache } from './response-cache.ts';

/** Without a TTL in model.json, answers stay this long in Redis. */
const DEFAULT_TTL_MS = 60 * 60 * 1000;

/**
 * The response cache in Redis (with REDIS_URL), shared by every replica. Entries expire by
 * TTL rather than by LRU eviction: the same Redis holds the batch job queue, which needs
 * `maxmemory-policy noeviction`.
 */
export function createRedisResponseCache(redis: Redis, prefix: string): ResponseCache {
  const keyOf = (key: string) => `${prefix}response-cache:${key}`;
  return {
    async get(key) {
      const text = await redis.get(keyOf(key));
      return text === null ? undefined : (JSON.parse(text) as TensorData[]);
    },
    async set(key, outputs, ttlMs) {
      await redis.set(keyOf(key), JSON.stringify(outputs), 'PX', ttlMs ?? DEFAULT_TTL_MS);
    },
  };
}
