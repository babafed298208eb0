import type { EventBus } from '../pubsub/event-bus.ts';
import type { PredictionStore } from './prediction-store.ts';
import type { PredictionRecord } from './records.ts';

export type History = ReturnType<typeof createHistory>;

/**
 * Appending to the history, the one place where "commit, then publish" is written:
 * a prediction is announced to subscribers only once its row is committed, so no
 * subscriber ever hears of a prediction the history could lose. When events cross
 * processes, `outbox` learns of each published event (src/pubsub/outbox.ts), so one
 * lost between the commit and the publish by a process that died is published later.
 */
export function createHistory(deps: { store: PredictionStore; bus: EventBus; outbox?: { published(id: string): void } }) {
  const { store, bus, outbox } = deps;
  return {
    async append(record: PredictionRecord): Promise<void> {
      await store.insert(record);
      bus.publish('prediction.created', record);
      outbox?.published(record.id);
    },
  };
}
