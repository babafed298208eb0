import { filter, pipe } from 'graphql-yoga';
import { MODEL_EVENT_TYPES, type ModelEvent, type ReplayAgreement, type TrafficWeight } from '../inference/model-events.ts';
import { builder } from './builder.ts';

export const ModelEventTypeEnum = builder.enumType('ModelEventType', {
  description: 'What happened to a model version or to its traffic.',
  values: {
    LOADING: { description: "The version's ONNX session is being created (at start, a new version folder, or loadModel)." },
    READY: { description: 'The version takes traffic: loaded, warmed up and, when the manifest asks, verified by a replay.' },
    FAILED: { description: 'The version could not be loaded, failed its warm-up, or agreed too little on its replay; `reason` says why. Versions that served before keep serving.' },
    UNLOADED: { description: 'The version was drained (requests in flight finished) and released: its folder was removed, the version policy dropped it, or unloadModel.' },
    VERIFIED: { description: 'Stored requests were replayed on the new version; `agreement` compares its answers with those served.' },
    TRAFFIC: { description: "The model's traffic split or shadow changed; `split` holds the weights now in force." },
    ROLLED_BACK: { description: 'A guarded rollout sent all traffic back to the stable version by itself; `reason` says which guard tripped.' },
  } satisfies Record<(typeof MODEL_EVENT_TYPES)[number], unknown>,
});

const ReplayAgreementRef = builder.objectRef<ReplayAgreement>('ReplayAgreement').implement({
  description: "A new version's answers on stored requests, compared with the answers that were served for them.",
  fields: (t) => ({
    replayed: t.exposeInt('replayed', { description: 'Stored requests replayed on the new version.' }),
    labelAgreement: t.exposeFloat('labelAgreement', { nullable: true, description: 'Classifiers: share of replayed requests (0 to 1) whose label equals the served label; null for other kinds.' }),
    meanAbsoluteDifference: t.exposeFloat('meanAbsoluteDifference', { description: 'Mean absolute difference between served and replayed output numbers.' }),
  }),
});

export const TrafficWeightRef = builder.objectRef<TrafficWeight>('TrafficWeight').implement({
  description: 'The share of requests without an explicit version that one version receives.',
  fields: (t) => ({
    version: t.exposeInt('version', { description: 'Model version.' }),
    weight: t.exposeFloat('weight', { description: 'Relative weight; shares are weight / sum of weights.' }),
  }),
});

const ModelEventRef = builder.objectRef<ModelEvent>('ModelEvent').implement({
  description: 'A change of state of a model version, or of the traffic between versions.',
  fields: (t) => ({
    type: t.field({ type: ModelEventTypeEnum, description: 'What happened.', resolve: (e) => e.type }),
    model: t.exposeString('model', { description: 'Model name.' }),
    version: t.exposeInt('version', { nullable: true, description: 'The version concerned; null for a model-wide event.' }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why, in words (FAILED, UNLOADED, ROLLED_BACK, and what triggered other events).' }),
    createdAt: t.field({ type: 'DateTime', description: 'When it happened.', resolve: (e) => e.createdAt }),
    agreement: t.field({ type: ReplayAgreementRef, nullable: true, description: 'VERIFIED (and FAILED after a replay): how the replay agreed.', resolve: (e) => e.agreement ?? null }),
    split: t.field({ type: [TrafficWeightRef], nullable: true, description: 'TRAFFIC and ROLLED_BACK: the weights now in force.', resolve: (e) => e.split ?? null }),
  }),
});

builder.subscriptionFields((t) => ({
  modelEvents: t.field({
    type: ModelEventRef,
    description: 'Model lifecycle as it happens: versions loading, ready, failed, unloaded, verified, and traffic changes. Events from the subscription on (nothing is replayed). Needs the read scope.',
    authScopes: { read: true },
    args: { model: t.arg.string({ description: 'Only events of this model.' }) },
    subscribe: (_root, args, ctx) => {
      const events = ctx.bus.subscribe('model.event');
      return args.model == null ? events : pipe(events, filter((e: ModelEvent) => e.model === args.model));
    },
    resolve: (e) => e,
  }),
}));
