import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { measureDrift, type FeatureDrift, type ModelDrift } from '../monitoring/drift.ts';
import type { DriftAlert } from '../monitoring/drift-watch.ts';
import { PSI_EPSILON } from '../monitoring/psi.ts';
import { builder } from './builder.ts';
import { driftCost, METADATA_LIST_COST } from './cost.ts';
import { ModelVersionRef } from './model.ts';

const DEFAULT_WINDOW = 500;
const MAX_WINDOW = 10_000;

const FeatureDriftRef = builder.objectRef<FeatureDrift>('FeatureDrift').implement({
  description: "One feature's recent inputs compared with its training reference (model.json `features[].reference`).",
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Feature name, from model.json.' }),
    psi: t.exposeFloat('psi', {
      nullable: true,
      description:
        `Population stability index of the sampled values against the reference bins: Σ (actual − expected) × ln(actual / expected), shares below ${PSI_EPSILON} counted as ${PSI_EPSILON}. ` +
        'Below 0.1: stable; 0.1 to 0.2: a moderate shift; above 0.2: a significant one. Null when nothing was sampled.',
    }),
    outOfRangeShare: t.exposeFloat('outOfRangeShare', {
      nullable: true,
      description:
        "Share (0 to 1) of sampled values outside the range seen in training (the reference's first and last edge). Values outside model.json's min/max never reach the history: predict refuses them. Null when nothing was sampled.",
    }),
  }),
});

const ModelDriftRef = builder.objectRef<ModelDrift>('ModelDrift').implement({
  description: "A model version's recent inputs, feature by feature, against the training data it was built on.",
  fields: (t) => ({
    window: t.exposeInt('window', { description: 'Newest stored predictions of this version asked for.' }),
    sampled: t.exposeInt('sampled', { description: 'Feature rows found in them and binned (a prediction of n rows counts n).' }),
    features: t.field({ type: [FeatureDriftRef], description: 'The features with a reference, in model.json order.', complexity: METADATA_LIST_COST, resolve: (d) => d.features }),
  }),
});

builder.objectField(ModelVersionRef, 'drift', (t) =>
  t.field({
    type: ModelDriftRef,
    nullable: true,
    description:
      "Input drift: the newest `window` stored predictions of this version (every caller's), binned against the training reference in model.json. " +
      'Null when model.json has no reference for any feature, or the version has not loaded. Needs the read scope.',
    authScopes: { read: true },
    complexity: (args) => driftCost(args.window, DEFAULT_WINDOW, MAX_WINDOW),
    args: {
      window: t.arg.int({
        defaultValue: DEFAULT_WINDOW,
        description: `Stored predictions to read, newest first: 1 to ${MAX_WINDOW}.`,
        validate: z
          .number()
          .int()
          .min(1, { error: `expected an integer from 1 to ${MAX_WINDOW}` })
          .max(MAX_WINDOW, { error: `expected an integer from 1 to ${MAX_WINDOW}` }),
      }),
    },
    resolve: (version, args, ctx) => (version.served ? measureDrift(ctx.predictions.recentInputs, version.served, args.window ?? DEFAULT_WINDOW) : null),
  }),
);

const DriftAlertRef = builder.objectRef<DriftAlert>('DriftAlert').implement({
  description: "A feature of a model version whose population stability index rose to the threshold (DRIFT_PSI_THRESHOLD) or above.",
  fields: (t) => ({
    model: t.exposeString('model', { description: 'Model name.' }),
    version: t.exposeInt('version', { description: 'Model version.' }),
    feature: t.exposeString('feature', { description: 'Feature name, from model.json.' }),
    psi: t.exposeFloat('psi', { description: 'The PSI the check found (see FeatureDrift.psi).' }),
    threshold: t.exposeFloat('threshold', { description: 'The threshold it crossed.' }),
    sampled: t.exposeInt('sampled', { description: 'Feature rows the check binned (from the newest DRIFT_WINDOW stored predictions).' }),
    createdAt: t.field({ type: 'DateTime', description: 'When the check found it.', resolve: (a) => a.createdAt }),
  }),
});

builder.subscriptionFields((t) => ({
  driftAlerts: t.field({
    type: DriftAlertRef,
    description:
      'Drift alerts as the periodic check (every DRIFT_CHECK_INTERVAL_MS) raises them: one when a feature crosses the threshold upward, not at every check while it stays above; ' +
      'again after a check has seen it below. Only models with a training reference in model.json are checked. Events from the subscription on. Needs the read scope.',
    authScopes: { read: true },
    args: { model: t.arg.string({ description: 'Only alerts of this model.' }) },
    subscribe: (_root, args, ctx) => {
      const alerts = ctx.bus.subscribe('drift.alert');
      return args.model == null ? alerts : pipe(alerts, filter((a: DriftAlert) => a.model === args.model));
    },
    resolve: (a) => a,
  }),
}));
