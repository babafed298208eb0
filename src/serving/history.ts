import type { EventBus } from '../pubsub/event-bus.ts';
import type { PredictionStore } from './prediction-store.ts';
import type { PredictionRecord } from './records.ts';

export type History = ReturnType<typeof createHistory>;

/**
 * Appending to the history, the one place where "commit, then publish" is written:
 * a prediction is announced to subscribers only once its row is committed, so no
 * subscriber ever hears of a prediction the history could lose. (With several
 * processes this is where an outbox goes.)
 */
export function createHistory(deps: { store: PredictionStore; bus: EventBus }) {
  const { store, bus } = deps;
  return {
    async append(record: PredictionRecord): Promise<void> {
      await store.insert(record);
      bus.publish('prediction.created', record);
    },
  };
}
