import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { Redis } from 'ioredis';

/** Payload fields that are Dates in the domain records and travel as ISO strings. */
const DATE_FIELDS = new Set(['createdAt', 'startedAt', 'finishedAt', 'notifiedAt']);
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** JSON with the records' Dates revived, so a payload reads the same on every replica. */
export const eventSerializer = {
  stringify: (value: unknown) => JSON.stringify(value),
  parse: (text: string): unknown =>
    JSON.parse(text, (key, value: unknown) => (DATE_FIELDS.has(key) && typeof value === 'string' && ISO_TIME.test(value) ? new Date(value) : value)),
};

export interface RedisEventTarget {
  /** The publishing connection, free for ordinary commands (the response cache uses it). */
  client: Redis;
  /** Give it to the event bus: events dispatched on any replica reach listeners on all of them. */
  target: EventTarget;
  /** Resolves when Redis answers (readiness). */
  ping(): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Redis pub/sub as the event bus's EventTarget (graphql-yoga's redis-event-target on two
 * ioredis connections: one publishes, one subscribes). Redis pub/sub delivers to whoever
 * is subscribed at the moment of publishing and keeps nothing: the history stays the
 * record, the events are the live feed.
 */
export function openRedisEventTarget(url: string): RedisEventTarget {
  const publishClient = new Redis(url, { maxRetriesPerRequest: 3 });
  const subscribeClient = publishClient.duplicate();
  const target = createRedisEventTarget({ publishClient, subscribeClient, serializer: eventSerializer }) as unknown as EventTarget;
  return {
    client: publishClient,
    target,
    ping: () => publishClient.ping(),
    async close() {
      await Promise.allSettled([publishClient.quit(), subscribeClient.quit()]);
    },
  };
}

/**
 * A claim on `key` that expires after `ttlMs`: resolves true for one caller across every
 * replica until it expires (SET NX PX), so periodic work runs in one replica at a time.
 */
export function claimOnce(client: Redis, key: string, ttlMs: number): () => Promise<boolean> {
  return async () => (await client.set(key, String(process.pid), 'PX', Math.round(ttlMs), 'NX')) === 'OK';
}
