import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimitedError } from '../errors.ts';

/** What a caller's budget is kept for; each class has its own (RATE_LIMITS). */
export const OPERATION_CLASSES = ['predict', 'generate', 'batch', 'read'] as const;
export type OperationClass = (typeof OPERATION_CLASSES)[number];

/** `points` of work per `durationS` seconds, per caller. */
export interface RateLimit {
  points: number;
  durationS: number;
}

export type RateLimits = Partial<Record<OperationClass, RateLimit>>;

export type RateLimiter = ReturnType<typeof createRateLimiter>;

/**
 * Per-caller budgets of work (rate-limiter-flexible: a fixed window of `durationS` per
 * caller and class, in memory or in Redis so every replica draws on the same budget). A
 * charge bigger than a whole window's points is charged the whole window: a caller may
 * send one big request on a fresh budget, never more. When Redis fails, each replica
 * falls back to its own in-memory budget (the limit holds per replica) rather than refuse
 * everyone or let everyone through.
 */
export function createRateLimiter(limits: RateLimits, options: { redis?: Redis; prefix?: string; onRefused?: (operationClass: OperationClass) => void } = {}) {
  const limiters = new Map<OperationClass, { limiter: RateLimiterAbstract; limit: RateLimit }>();
  for (const operationClass of OPERATION_CLASSES) {
    const limit = limits[operationClass];
    if (!limit) continue;
    const base = { keyPrefix: `${options.prefix ?? ''}rate:${operationClass}`, points: limit.points, duration: limit.durationS };
    const memory = new RateLimiterMemory(base);
    const limiter = options.redis ? new RateLimiterRedis({ ...base, storeClient: options.redis, insuranceLimiter: memory, rejectIfRedisNotReady: true }) : memory;
    limiters.set(operationClass, { limiter, limit });
  }

  return {
    /** True when some class is limited. */
    enabled: limiters.size > 0,
    /**
     * Charges `caller` the work of one operation, all classes or none: when one class
     * refuses, nothing stays charged, so a refused request costs nothing. Throws RateLimitedError.
     */
    async charge(caller: string, costs: Partial<Record<OperationClass, number>>): Promise<void> {
      const taken: Array<{ limiter: RateLimiterAbstract; points: number }> = [];
      for (const [operationClass, cost] of Object.entries(costs) as Array<[OperationClass, number]>) {
        const entry = limiters.get(operationClass);
        if (!entry || cost <= 0) continue;
        const points = Math.min(Math.ceil(cost), entry.limit.points);
        try {
          await entry.limiter.consume(caller, points);
          taken.push({ limiter: entry.limiter, points });
        } catch (refusal) {
          // A refused request did no work: it costs nothing (the store counted its points; give them back too).
          if (refusal instanceof RateLimiterRes) taken.push({ limiter: entry.limiter, points });
          await Promise.allSettled(taken.map((t) => t.limiter.reward(caller, t.points)));
          if (!(refusal instanceof RateLimiterRes)) throw refusal;
          options.onRefused?.(operationClass);
          throw new RateLimitedError(operationClass, refusal.msBeforeNext, entry.limit);
        }
      }
    },
  };
}

/**
 * The address a request came from: the socket's peer, or with `trustProxy` the last
 * address in X-Forwarded-For (the one the proxy in front appended; earlier ones are the
 * client's word, which anyone can forge).
 */
export function clientAddress(req: IncomingMessage | undefined, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req?.headers['x-forwarded-for'];
    const last = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded)?.split(',').at(-1)?.trim();
    if (last) return last;
  }
  return req?.socket?.remoteAddress ?? 'unknown';
}
