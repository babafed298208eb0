import { ownerOf } from '../auth/principal.ts';
import { noteOperation } from '../observability/use-operation-log.ts';
import type { Comparison, LatencySummary, Shadow, ShadowResultRecord } from '../serving/shadow.ts';
import { builder } from './builder.ts';
import { ModelRef } from './model.ts';
import { PredictionRef } from './prediction.ts';
import { TensorRef } from './tensor.ts';

const ShadowRef = builder.objectRef<Shadow>('Shadow').implement({
  description:
    "A model's shadow version: every prediction of the model is also run on it, off the response path, and its answer stored beside the prediction. Set per process (each replica its own), lost on restart; the counters are this process's since it was set.",
  fields: (t) => ({
    model: t.exposeString('model', { description: 'Model name.' }),
    version: t.exposeInt('version', { description: 'The shadow version.' }),
    since: t.field({ type: 'DateTime', description: 'When it was set.', resolve: (s) => s.since }),
    runs: t.exposeInt('runs', { description: 'Requests run (or tried) on the shadow version.' }),
    failures: t.exposeInt('failures', { description: 'Shadow runs that failed (the version not READY, the request refused by it, or the run threw); stored with their `error`.' }),
    dropped: t.exposeInt('dropped', { description: 'Requests not run on the shadow because SHADOW_MAX_OUTSTANDING runs were in flight.' }),
    writeErrors: t.exposeInt('writeErrors', { description: 'Shadow results that could not be stored (logged).' }),
    outstanding: t.exposeInt('outstanding', { description: 'Shadow runs started and not yet answered by the shadow version.' }),
  }),
});

const ShadowResultRef = builder.objectRef<ShadowResultRecord>('ShadowResult').implement({
  description: "The shadow version's answer to the same request as a prediction, stored after the prediction.",
  fields: (t) => ({
    version: t.exposeInt('shadowVersion', { description: 'The shadow version that answered.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When the shadow run ended.', resolve: (r) => r.createdAt }),
    outputs: t.field({ type: [TensorRef], nullable: true, description: 'The tensors the shadow version returned; null when it failed.', resolve: (r) => r.outputs }),
    label: t.string({ nullable: true, description: "Classifiers: the shadow's most probable class.", resolve: (r) => r.label }),
    error: t.string({ nullable: true, description: 'Why the shadow run failed; null when it answered.', resolve: (r) => r.error }),
    latencyMs: t.float({
      nullable: true,
      description: "Milliseconds from the shadow run's start to its answer; it runs at bulk priority, so this includes waiting for the version's online work. Null when it failed.",
      resolve: (r) => r.latencyMs,
    }),
    meanAbsoluteDifference: t.float({
      nullable: true,
      description: "Mean absolute difference between the shadow's and the prediction's output numbers (outputs of the same name and size); null when none compare.",
      resolve: (r) => r.meanAbsoluteDifference,
    }),
    labelsAgree: t.boolean({ nullable: true, description: "Classifiers: the shadow's label equals the prediction's; null for other kinds or when it failed.", resolve: (r) => r.labelsAgree }),
  }),
});

builder.objectField(PredictionRef, 'shadow', (t) =>
  t.field({
    type: ShadowResultRef,
    nullable: true,
    description: "The answer of the model's shadow version (setShadow) to this prediction's request; null when no shadow was set, it was dropped, or it has not run yet (it runs after the prediction is answered).",
    resolve: (p, _args, ctx) => ctx.loaders.shadowByPredictionId.load(p.id),
  }),
);

builder.objectField(ModelRef, 'shadow', (t) =>
  t.field({
    type: ShadowRef,
    nullable: true,
    description: "This model's shadow in the process answering, with its counters; null when none is set.",
    resolve: (m, _args, ctx) => ctx.shadow.get(m.name) ?? null,
  }),
);

const LatencySummaryRef = builder.objectRef<LatencySummary>('LatencySummary').implement({
  description: 'Latencies of the compared pairs, in milliseconds; null without any pair.',
  fields: (t) => ({
    meanMs: t.float({ nullable: true, description: 'Mean.', resolve: (l) => l.meanMs }),
    p95Ms: t.float({ nullable: true, description: '95th percentile by nearest rank: the smallest latency with at least 95% of the pairs at or below it.', resolve: (l) => l.p95Ms }),
  }),
});

const ModelComparisonRef = builder.objectRef<Comparison>('ModelComparison').implement({
  description:
    'Primary version `a` against shadow version `b` over the stored pairs (predictions answered by `a` and also run on `b`), computed in the database. A key without the admin scope gets the figures of its own predictions only.',
  fields: (t) => ({
    model: t.exposeString('model', { description: 'Model name.' }),
    a: t.exposeInt('version', { description: 'The primary version.' }),
    b: t.exposeInt('shadowVersion', { description: 'The shadow version.' }),
    since: t.field({ type: 'DateTime', nullable: true, description: 'Only predictions made at or after this time; null: all.', resolve: (c) => c.since }),
    count: t.exposeInt('count', { description: 'Pairs: predictions the shadow version answered.' }),
    failed: t.exposeInt('failed', { description: 'Shadow runs that failed; not in the other figures.' }),
    agreement: t.float({ nullable: true, description: 'Classifiers: share of pairs whose labels agree, 0..1; null for other kinds or without pairs.', resolve: (c) => c.agreement }),
    meanAbsoluteDifference: t.float({
      nullable: true,
      description: "Mean over the pairs of each pair's mean absolute difference between output numbers; null without comparable outputs.",
      resolve: (c) => c.meanAbsoluteDifference,
    }),
    primaryLatency: t.field({ type: LatencySummaryRef, description: "The primary version's latency (`Prediction.latencyMs`) over the pairs.", resolve: (c) => c.primaryLatency }),
    shadowLatency: t.field({ type: LatencySummaryRef, description: "The shadow version's latency (`ShadowResult.latencyMs`, bulk priority) over the pairs.", resolve: (c) => c.shadowLatency }),
  }),
});

builder.queryField('modelComparison', (t) =>
  t.field({
    type: ModelComparisonRef,
    description:
      'How shadow version `b` compares with primary version `a` of `model` over the pairs stored since `since`: count, agreement, mean absolute difference, and the latency of both. One aggregate query over the stored pairs, plus one per p95. Needs the read scope.',
    authScopes: { read: true },
    args: {
      model: t.arg.string({ required: true, description: 'Model name.' }),
      a: t.arg.int({ required: true, description: 'The primary version (the one that answered the callers).' }),
      b: t.arg.int({ required: true, description: 'The shadow version.' }),
      since: t.arg({ type: 'DateTime', description: 'Only predictions made at or after this time.' }),
    },
    resolve: (_root, args, ctx) => ctx.shadow.compare({ model: args.model, version: args.a, shadowVersion: args.b, since: args.since ?? null, apiKeyId: ownerOf(ctx.principal) }),
  }),
);

builder.mutationFields((t) => ({
  setShadow: t.field({
    type: ShadowRef,
    description:
      "Runs every prediction of `model` from now on also on `version`, off the response path (at bulk priority, after the caller's answer; never slowing or failing it), and stores the shadow's answer beside the prediction (`Prediction.shadow`). Replaces the model's earlier shadow. In this process only, until restart or clearShadow. MODEL_NOT_FOUND for an unknown model or version; MODEL_NOT_READY when the version is not READY; BAD_USER_INPUT for the version serving the model by default, or a generator. Needs the admin scope.",
    authScopes: { admin: true },
    args: {
      model: t.arg.string({ required: true, description: 'Model name.' }),
      version: t.arg.int({ required: true, description: 'The version to shadow the model with.' }),
    },
    resolve: (_root, args, ctx) => {
      noteOperation(ctx, { model: args.model, version: args.version });
      return ctx.shadow.set(args.model, args.version);
    },
  }),
  clearShadow: t.field({
    type: ShadowRef,
    nullable: true,
    description: "Stops shadowing `model` (shadow runs in flight finish and are stored); answers with the shadow stopped and its final counters, or null when none was set. MODEL_NOT_FOUND for an unknown model. Needs the admin scope.",
    authScopes: { admin: true },
    args: { model: t.arg.string({ required: true, description: 'Model name.' }) },
    resolve: (_root, args, ctx) => {
      noteOperation(ctx, { model: args.model });
      return ctx.shadow.clear(args.model);
    },
  }),
}));
