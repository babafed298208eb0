// What happens to model versions, as `modelEvents` subscribers hear it. Declarations and one
// constructor only: the registry, the traffic router and drift checks all publish these.

/**
 * - LOADING: a version's session is being created (at start, a new folder, `loadModel`).
 * - READY: it takes traffic (after warm-up and, when configured, a verified replay).
 * - FAILED: it could not be loaded, failed warm-up, or its replay agreed too little; `reason` says why. Versions serving before keep serving.
 * - UNLOADED: it was drained (requests in flight finished) and released (folder removed, version policy, `unloadModel`).
 * - VERIFIED: a replay of stored requests on a new version finished; `agreement` holds the figures.
 * - TRAFFIC: the traffic split or shadow of a model changed; `split` holds the weights now in force.
 * - ROLLED_BACK: a guarded rollout returned traffic to the stable version by itself; `reason` says which guard tripped.
 */
export const MODEL_EVENT_TYPES = ['LOADING', 'READY', 'FAILED', 'UNLOADED', 'VERIFIED', 'TRAFFIC', 'ROLLED_BACK'] as const;
export type ModelEventType = (typeof MODEL_EVENT_TYPES)[number];

/** How a new version's answers compare with those served before, on the same stored requests. */
export interface ReplayAgreement {
  /** Stored requests replayed on the new version. */
  replayed: number;
  /** Classifiers: the share of replayed requests whose label matches the served one (0..1); null for other kinds. */
  labelAgreement: number | null;
  /** Mean absolute difference between served and replayed outputs, over every output number. */
  meanAbsoluteDifference: number;
}

export interface TrafficWeight {
  version: number;
  weight: number;
}

export interface ModelEvent {
  type: ModelEventType;
  model: string;
  /** The version concerned; null for a model-wide event (e.g. a manifest that does not parse). */
  version: number | null;
  /** Why (FAILED, UNLOADED, ROLLED_BACK, and what triggered other events); null when there is nothing to say. */
  reason: string | null;
  /** When it happened; named like the records' timestamps so it travels through Redis as a Date. */
  createdAt: Date;
  agreement?: ReplayAgreement | null;
  split?: TrafficWeight[] | null;
}

/** Where model events go (the event bus's `model.event` topic in the app; a list in unit tests). */
export type ModelEventSink = (event: ModelEvent) => void;

export function modelEvent(type: ModelEventType, model: string, version: number | null, reason: string | null = null, extra: Pick<ModelEvent, 'agreement' | 'split'> = {}): ModelEvent {
  return { type, model, version, reason, createdAt: new Date(), ...extra };
}
