import { BadUserInputError, ModelNotFoundError } from '../errors.ts';
import { GUARD_METRICS, type RolloutGuard } from '../inference/rollout-guard.ts';
import type { TrafficSplit } from '../inference/traffic.ts';
import type { Model } from '../inference/types.ts';
import { builder, type Context } from './builder.ts';
import { ModelRef } from './model.ts';
import { TrafficWeightRef } from './model-events.ts';

const GuardMetricEnum = builder.enumType('GuardMetric', {
  description: 'What a rollout guard compares between a candidate version and the stable one.',
  values: {
    ERROR_RATE: { description: 'Share of inference runs that failed, counted in this process since the split took effect. `threshold`: how many more (0.05 = five percentage points).' },
    P95_LATENCY: { description: "95th percentile of inference latency over each version's newest 1,000 runs. `threshold`: how much longer, as a ratio (0.5 = half as long again)." },
    ACCURACY: { description: 'Share of feedback labels (recordFeedback) equal to the served label, since the split took effect. `threshold`: how much lower (0.05 = five percentage points).' },
  } satisfies Record<(typeof GUARD_METRICS)[number], unknown>,
});

const TrafficSplitSourceEnum = builder.enumType('TrafficSplitSource', {
  description: 'Where the traffic split in force comes from.',
  values: {
    MANIFEST: { description: "model.json's `traffic`." },
    MUTATION: { description: 'setTrafficSplit, or a rollback by the guard; it wins over model.json until clearTrafficSplit.' },
  },
});

const RolloutGuardRef = builder.objectRef<RolloutGuard>('RolloutGuard').implement({
  description: 'Returns all traffic to the stable version by itself when a candidate does worse beyond the threshold.',
  fields: (t) => ({
    metric: t.field({ type: GuardMetricEnum, description: 'What is compared.', resolve: (g) => g.metric }),
    stableVersion: t.exposeInt('stableVersion', { description: 'The version traffic returns to.' }),
    threshold: t.exposeFloat('threshold', { description: 'How much worse a candidate may be (see GuardMetric).' }),
    minSamples: t.exposeInt('minSamples', { description: 'Samples (runs, or predictions with feedback) each version needs before it is judged.' }),
  }),
});

const TrafficSplitRef = builder.objectRef<TrafficSplit>('TrafficSplit').implement({
  description: 'How requests that name no version are shared between versions of a model, routed by request id (a retry with the same `x-request-id` lands on the same version).',
  fields: (t) => ({
    weights: t.field({ type: [TrafficWeightRef], description: 'The weights, by version; a version that is not READY takes no share.', resolve: (s) => s.weights }),
    source: t.field({ type: TrafficSplitSourceEnum, description: 'model.json or setTrafficSplit.', resolve: (s) => s.source }),
    guard: t.field({ type: RolloutGuardRef, nullable: true, description: 'The rollout guard, if the split has one.', resolve: (s) => s.guard }),
    since: t.field({ type: 'DateTime', description: 'When this split took effect; the guard compares outcomes from then on.', resolve: (s) => s.since }),
  }),
});

builder.objectField(ModelRef, 'trafficSplit', (t) =>
  t.field({
    type: TrafficSplitRef,
    nullable: true,
    description: 'The traffic split in force in this process; null when every request without a version goes to `defaultVersion`.',
    resolve: (m, _args, ctx) => ctx.traffic.split(m.name) ?? null,
  }),
);

const TrafficWeightInputRef = builder.inputType('TrafficWeightInput', {
  description: 'One version and its weight in a traffic split.',
  fields: (t) => ({
    version: t.int({ required: true, description: 'A version of the model.' }),
    weight: t.float({ required: true, description: 'Relative weight, 0 or more; shares are weight / sum of weights.' }),
  }),
});

const RolloutGuardInputRef = builder.inputType('RolloutGuardInput', {
  description: 'A guard for a traffic split: when a candidate does worse than the stable version beyond the threshold, all traffic returns to the stable version.',
  fields: (t) => ({
    metric: t.field({ type: GuardMetricEnum, required: true, description: 'What is compared.' }),
    stableVersion: t.int({ required: true, description: 'The version traffic returns to; it must take part in the split with a weight above 0.' }),
    threshold: t.float({ required: true, description: 'How much worse a candidate may be, 0 or more (see GuardMetric).' }),
    minSamples: t.int({ defaultValue: 50, description: 'Samples each version needs before it is judged (runs, or predictions with feedback); at least 1.' }),
  }),
});

interface WeightInput {
  version: number;
  weight: number;
}

/** The model, after checking the split against it; BAD_USER_INPUT names the first problem. */
function checkedSplit(ctx: Context, model: string, split: readonly WeightInput[], guard: RolloutGuard | null): Model {
  const found = ctx.models.get(model);
  if (!found) throw new ModelNotFoundError(model);
  const issue = (path: Array<string | number>, message: string) => new BadUserInputError([{ path, message }]);
  if (split.length === 0) throw issue(['split'], 'Expected at least one version');
  const seen = new Set<number>();
  split.forEach((w, i) => {
    if (!found.versions.some((v) => v.version === w.version)) throw new ModelNotFoundError(model, w.version);
    if (seen.has(w.version)) throw issue(['split', i, 'version'], `Version ${w.version} appears twice`);
    seen.add(w.version);
    if (!Number.isFinite(w.weight) || w.weight < 0) throw issue(['split', i, 'weight'], `Expected a weight of 0 or more, got \`${w.weight}\``);
  });
  if (!split.some((w) => w.weight > 0)) throw issue(['split'], 'Expected at least one weight above 0');
  if (guard) {
    if (!split.some((w) => w.version === guard.stableVersion && w.weight > 0)) throw issue(['guard', 'stableVersion'], `Version ${guard.stableVersion} must take part in the split with a weight above 0`);
    if (!Number.isFinite(guard.threshold) || guard.threshold < 0) throw issue(['guard', 'threshold'], `Expected a threshold of 0 or more, got \`${guard.threshold}\``);
    if (!Number.isInteger(guard.minSamples) || guard.minSamples < 1) throw issue(['guard', 'minSamples'], `Expected an integer of 1 or more, got \`${guard.minSamples}\``);
  }
  return found;
}

builder.mutationFields((t) => ({
  setTrafficSplit: t.field({
    type: ModelRef,
    description:
      "Shares the requests that name no version between versions by weight, routed by request id, in this process (each replica keeps its own). Overrides model.json's `traffic` until clearTrafficSplit. With a guard, a candidate that does worse than the stable version is rolled back by itself (a ROLLED_BACK model event). Needs the admin scope.",
    authScopes: { admin: true },
    args: {
      model: t.arg.string({ required: true, description: 'Model name.' }),
      split: t.arg({ type: [TrafficWeightInputRef], required: true, description: 'Versions and weights.' }),
      guard: t.arg({ type: RolloutGuardInputRef, description: 'Optional rollout guard.' }),
    },
    resolve: (_root, args, ctx) => {
      const guard = args.guard ? { ...args.guard, minSamples: args.guard.minSamples ?? 50 } : null;
      const model = checkedSplit(ctx, args.model, args.split, guard);
      ctx.traffic.set(args.model, args.split.map((w) => ({ version: w.version, weight: w.weight })), guard);
      return model;
    },
  }),
  clearTrafficSplit: t.field({
    type: ModelRef,
    description: "Removes the split set by setTrafficSplit (or left by a rollback): model.json's `traffic` applies again, else the default version takes every request. Needs the admin scope.",
    authScopes: { admin: true },
    args: { model: t.arg.string({ required: true, description: 'Model name.' }) },
    resolve: (_root, args, ctx) => {
      const model = ctx.models.get(args.model);
      if (!model) throw new ModelNotFoundError(args.model);
      ctx.traffic.clear(args.model);
      return model;
    },
  }),
}));
