import type { Cluster } from 'node:cluster';
import { eventSerializer } from './redis-event-target.ts';

/** One bus event on its way through the primary: the topic and its payload as JSON text. */
interface RelayedEvent {
  kind: 'gateway.event';
  type: string;
  detail: string;
}

const isRelayedEvent = (message: unknown): message is RelayedEvent =>
  typeof message === 'object' && message !== null && (message as RelayedEvent).kind === 'gateway.event';

/** A worker's end of the IPC channel to the primary: `process` in a cluster worker. */
export interface PrimaryChannel {
  send?(message: unknown, sendHandle?: undefined, options?: undefined, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

/**
 * The in-machine channel between cluster workers (WORKERS > 1 without REDIS_URL), as the
 * event bus's EventTarget. `dispatchEvent` only sends the event to the primary, which
 * relays it to every worker, this one included (`relayClusterEvents`): local subscribers
 * hear their own worker's events by the same path as the others', so every worker sees
 * all events in one order, the primary's. Payloads travel as JSON with the records'
 * Dates revived, as through Redis. Like Redis pub/sub it keeps nothing: a worker hears
 * the events relayed while it is connected.
 */
export function openClusterEventTarget(channel: PrimaryChannel = process): EventTarget {
  class ClusterEventTarget extends EventTarget {
    constructor() {
      super();
      channel.on('message', (message) => {
        if (isRelayedEvent(message)) super.dispatchEvent(new CustomEvent(message.type, { detail: eventSerializer.parse(message.detail) }));
      });
    }

    override dispatchEvent(event: Event): boolean {
      const message: RelayedEvent = { kind: 'gateway.event', type: event.type, detail: eventSerializer.stringify((event as CustomEvent).detail) };
      // The send fails only once the primary is gone, and then this worker is exiting:
      // the bus never throws, and the history keeps the record.
      channel.send?.(message, undefined, undefined, () => {});
      return true;
    }
  }
  return new ClusterEventTarget();
}

/** In the primary: every event a worker sends goes to every connected worker, in arrival order. */
export function relayClusterEvents(cluster: Cluster): void {
  cluster.on('message', (_from, message: unknown) => {
    if (!isRelayedEvent(message)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      // A worker that died meanwhile misses the event, like a disconnected Redis subscriber.
      if (worker?.isConnected()) worker.send(message, () => {});
    }
  });
}
