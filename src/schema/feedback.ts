import { NotFoundError } from '../errors.ts';
import { noteOperation } from '../observability/use-operation-log.ts';
import type { VersionState } from '../inference/types.ts';
import type { ConfusionCell, FeedbackRecord, Quality } from '../serving/feedback.ts';
import { builder, type Context } from './builder.ts';
import { ModelVersionRef } from './model.ts';
import { PredictionRef } from './prediction.ts';

const FeedbackRef = builder.objectRef<FeedbackRecord>('Feedback').implement({
  description: 'Ground truth recorded for a prediction with `recordFeedback`; recording again replaces it.',
  fields: (t) => ({
    label: t.string({ nullable: true, description: 'Classifiers: the true label.', resolve: (f) => f.label }),
    value: t.float({ nullable: true, description: 'Regressors: the true value.', resolve: (f) => f.value }),
    recordedAt: t.field({ type: 'DateTime', description: 'When it was recorded (last replaced).', resolve: (f) => f.recordedAt }),
  }),
});

builder.objectField(PredictionRef, 'feedback', (t) =>
  t.field({
    type: FeedbackRef,
    nullable: true,
    description: 'The ground truth recorded for this prediction, if any.',
    resolve: (p, _args, ctx) => ctx.loaders.feedbackByPredictionId.load(p.id),
  }),
);

const ConfusionCellRef = builder.objectRef<ConfusionCell>('ConfusionCell').implement({
  description: 'One non-zero cell of a confusion matrix: how many predictions served `predicted` where the feedback said `actual`.',
  fields: (t) => ({
    actual: t.exposeString('actual', { description: 'The true label (from feedback).' }),
    predicted: t.exposeString('predicted', { description: 'The label the model served.' }),
    count: t.exposeInt('count', { description: 'Predictions with this pair.' }),
  }),
});

const ModelQualityRef = builder.objectRef<Quality>('ModelQuality').implement({
  description:
    "Live quality of a model version from the feedback on its predictions, computed in the database. Over the window's predictions that have feedback; a key without the admin scope sees only its own predictions'.",
  fields: (t) => ({
    count: t.exposeInt('count', { description: 'Predictions with feedback in the window.' }),
    accuracy: t.float({
      nullable: true,
      description: 'Classifiers: share of feedback labels equal to the served label, 0..1; null without labelled feedback.',
      resolve: (q) => q.accuracy,
    }),
    confusionMatrix: t.field({
      type: [ConfusionCellRef],
      description: 'Classifiers: the non-zero cells (actual × predicted), ordered by actual then predicted label; empty without labelled feedback.',
      resolve: (q) => q.confusionMatrix,
    }),
    mae: t.float({ nullable: true, description: 'Regressors: mean absolute error of the served values; null without value feedback.', resolve: (q) => q.mae }),
    rmse: t.float({ nullable: true, description: 'Regressors: root mean squared error of the served values; null without value feedback.', resolve: (q) => q.rmse }),
  }),
});

/** The model a version state belongs to (the registry replaces states, so look it up by identity, then by the served version's name). */
function modelNameOf(version: VersionState, ctx: Context): string | undefined {
  return ctx.models.list().find((m) => m.versions.includes(version))?.name ?? version.served?.name;
}

builder.objectField(ModelVersionRef, 'quality', (t) =>
  t.field({
    type: ModelQualityRef,
    description:
      "Live quality from feedback (`recordFeedback`) on this version's predictions made in [since, until): one aggregate query. A key without the admin scope gets the figures of its own predictions only. Needs the read scope.",
    authScopes: { read: true },
    args: {
      since: t.arg({ type: 'DateTime', description: 'Only predictions made at or after this time.' }),
      until: t.arg({ type: 'DateTime', description: 'Only predictions made before this time.' }),
    },
    resolve: async (v, args, ctx) => {
      const model = modelNameOf(v, ctx);
      if (model === undefined) return { count: 0, accuracy: null, mae: null, rmse: null, confusionMatrix: [] };
      // Batched: `models { versions { quality } }` is one query (the loader filters by ownerOf).
      return ctx.loaders.qualityByVersion.load({ model, version: v.version, since: args.since ?? null, until: args.until ?? null });
    },
  }),
);

builder.mutationField('recordFeedback', (t) =>
  t.field({
    type: PredictionRef,
    description:
      "Attaches ground truth to a stored prediction: `label` (one of the model's labels) for a classifier's, `value` (a finite number) for a regressor's. Recording again replaces the earlier feedback. A key without the admin scope can give feedback on its own predictions only; another key's id is NOT_FOUND, like an unknown one. Needs the predict scope.",
    authScopes: { predict: true },
    args: {
      predictionId: t.arg.id({ required: true, description: 'The prediction (`predict` answers with its `id`).' }),
      label: t.arg.string({ description: 'Classifiers: the true label.' }),
      value: t.arg.float({ description: 'Regressors: the true value.' }),
    },
    resolve: async (_root, args, ctx) => {
      const id = String(args.predictionId);
      // The loader reads only the caller's own predictions (ownerOf): another key's is absent.
      const prediction = await ctx.loaders.predictionById.load(id);
      if (!prediction) throw new NotFoundError('prediction', id);
      noteOperation(ctx, { model: prediction.modelName, version: prediction.version });
      const feedback = await ctx.feedback.record(prediction, { label: args.label, value: args.value }, ctx.principal.keyId);
      ctx.loaders.feedbackByPredictionId.clear(id).prime(id, feedback);
      return prediction;
    },
  }),
);
