import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import type { ClassScore, Outcome } from '../inference/interpretation.ts';
import { meaningOf } from '../serving/outcome.ts';
import type { PredictionRecord } from '../serving/records.ts';
import { isVisibleTo, ownerOf } from '../auth/principal.ts';
import { noteOperation } from '../observability/use-operation-log.ts';
import { builder, type Context } from './builder.ts';
import { ModelRef } from './model.ts';
import { EDGES_COST, pageCost, predictCost } from './cost.ts';
import { cursorCodec, pageInfoOf, PageInfoRef } from './pagination.ts';
import { TensorInputRef, TensorRef } from './tensor.ts';

const ClassScoreRef = builder.objectRef<ClassScore>('ClassScore').implement({
  description: 'One class of a classifier prediction.',
  fields: (t) => ({
    label: t.exposeString('label', { description: "The class label from the model's manifest (its index when it has none)." }),
    index: t.exposeInt('index', { description: "Position of the class in the model's output." }),
    probability: t.exposeFloat('probability', { description: 'Probability the model gave the class, 0..1.' }),
  }),
});

/** label, scores and value as decided when the prediction was made (serving/outcome.ts). */
const outcome = (record: PredictionRecord, ctx: Context): Outcome | null => meaningOf(record, ctx.models)?.outcome ?? null;

export const FinishReasonEnum = builder.enumType('FinishReason', {
  description: 'Why a generation ended.',
  values: {
    LENGTH: { description: '`maxTokens` tokens were generated.' },
    STOP: { description: 'A stop sequence appeared; it is cut from the text.' },
    CANCELLED: { description: 'The server stopped decoding (shutting down).' },
  },
});

export const PredictionRef = builder.objectRef<PredictionRecord>('Prediction').implement({
  description:
    'One stored prediction. `label`, `scores` and `value` describe the first row of the main output (model.json `output`, else the first output), with the meaning model.json gave when the prediction was made.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'UUIDv7: sorts by creation time.' }),
    modelName: t.exposeString('modelName', { description: 'Name of the model that answered.' }),
    version: t.exposeInt('version', { description: 'Version of the model that answered.' }),
    createdAt: t.field({ type: 'DateTime', description: 'When the prediction was made.', resolve: (p) => p.createdAt }),
    latencyMs: t.exposeFloat('latencyMs', { description: 'Milliseconds spent on validation and inference.' }),
    cached: t.boolean({
      description: "The outputs came from the model's response cache (model.json `responseCache`): an earlier request had the same input tensors, and no ONNX run was made.",
      resolve: (p) => p.cached ?? false,
    }),
    model: t.field({
      type: ModelRef,
      nullable: true,
      description: 'The model, while it is still in the repository; history outlives models.',
      resolve: (p, _args, ctx) => ctx.models.get(p.modelName) ?? null,
    }),
    inputs: t.field({ type: [TensorRef], description: 'The request tensors, as sent (the model sees them converted to their datatype).', resolve: (p) => p.inputs }),
    outputs: t.field({ type: [TensorRef], description: 'The tensors the model returned.', resolve: (p) => p.outputs }),
    label: t.string({
      nullable: true,
      description: 'Classifiers: the most probable class.',
      resolve: (p, _args, ctx) => outcome(p, ctx)?.label ?? null,
    }),
    scores: t.field({
      type: [ClassScoreRef],
      nullable: true,
      description: 'Classifiers: classes by probability, highest first.',
      complexity: (args) => ({ field: 1, multiplier: Math.max(1, args.top ?? 10) }),
      args: {
        top: t.arg.int({
          description: 'Return only this many classes (at least 1).',
          validate: z.number().int().min(1, { error: 'expected an integer of at least 1' }).nullish(),
        }),
      },
      resolve: (p, args, ctx) => {
        const scores = outcome(p, ctx)?.scores ?? null;
        return scores && args.top != null ? scores.slice(0, args.top) : scores;
      },
    }),
    prompt: t.string({
      nullable: true,
      description: 'Generators: the prompt.',
      resolve: (p) => p.generation?.prompt ?? null,
    }),
    text: t.string({
      nullable: true,
      description: 'Generators: the generated text (without the prompt or any stop sequence).',
      resolve: (p) => p.generation?.text ?? null,
    }),
    finishReason: t.field({
      type: FinishReasonEnum,
      nullable: true,
      description: 'Generators: why decoding ended.',
      resolve: (p) => p.generation?.finishReason ?? null,
    }),
    value: t.float({
      nullable: true,
      description: 'Regressors: the predicted value.',
      resolve: (p, _args, ctx) => {
        return outcome(p, ctx)?.value ?? null;
      },
    }),
  }),
});

const PredictionEdgeRef = builder.objectRef<PredictionRecord>('PredictionEdge').implement({
  description: 'A prediction and its cursor.',
  fields: (t) => ({
    cursor: t.string({ description: 'Opaque position; pass as `after` to continue.', resolve: (p) => cursors.encode(p.id) }),
    node: t.field({ type: PredictionRef, description: 'The prediction.', resolve: (p) => p }),
  }),
});

const PredictionConnectionRef = builder
  .objectRef<{ records: PredictionRecord[]; hasNextPage: boolean }>('PredictionConnection')
  .implement({
    description: 'A page of the prediction history, newest first.',
    fields: (t) => ({
      edges: t.field({ type: [PredictionEdgeRef], description: 'The page.', complexity: EDGES_COST, resolve: (c) => c.records }),
      pageInfo: t.field({
        type: PageInfoRef,
        description: 'Where this page sits.',
        resolve: (c) => pageInfoOf(c.records, c.hasNextPage, (p) => cursors.encode(p.id)),
      }),
    }),
  });

const cursors = cursorCodec('prediction');

const MAX_PAGE = 100;

builder.queryFields((t) => ({
  prediction: t.field({
    type: PredictionRef,
    nullable: true,
    description: "One stored prediction; null when there is none with this id (or another API key made it, for a key without the admin scope). Needs the read scope.",
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true, description: 'The prediction id.' }) },
    // ctx.loaders reads only the caller's own predictions (ownerOf).
    resolve: (_root, args, ctx) => ctx.loaders.predictionById.load(String(args.id)),
  }),
  predictions: t.field({
    type: PredictionConnectionRef,
    description: "The prediction history, newest first, optionally filtered; a key without the admin scope sees only its own predictions. Needs the read scope.",
    authScopes: { read: true },
    complexity: (args) => pageCost(args.first, 20, MAX_PAGE),
    args: {
      model: t.arg.string({ description: 'Only this model.' }),
      version: t.arg.int({ description: 'Only this version.' }),
      since: t.arg({ type: 'DateTime', description: 'Only predictions made at or after this time.' }),
      until: t.arg({ type: 'DateTime', description: 'Only predictions made before this time.' }),
      first: t.arg.int({
        defaultValue: 20,
        description: `Page size, 1 to ${MAX_PAGE}.`,
        validate: z
          .number()
          .int()
          .min(1, { error: `expected an integer from 1 to ${MAX_PAGE}` })
          .max(MAX_PAGE, { error: `expected an integer from 1 to ${MAX_PAGE}` }),
      }),
      after: t.arg.string({ description: "Continue after this cursor (a previous page's `pageInfo.endCursor`)." }),
    },
    resolve: async (_root, args, ctx) => {
      const afterId = args.after != null ? cursors.decode(args.after) : undefined;
      const page = await ctx.predictions.page({ ...args, apiKeyId: ownerOf(ctx.principal) }, args.first ?? 20, afterId);
      for (const record of page.records) ctx.loaders.predictionById.prime(record.id, record);
      return page;
    },
  }),
}));

const PredictInputRef = builder.inputType('PredictInput', {
  description: 'A prediction request: exactly one of `features` or `inputs`.',
  fields: (t) => ({
    model: t.string({ required: true, description: 'Model name.' }),
    version: t.int({ description: "Version to run; default: the model's default version." }),
    features: t.floatList({
      description: 'Shortcut for models with one tabular input: one row of features, in `featureNames` order.',
    }),
    inputs: t.field({ type: [TensorInputRef], description: 'General form: every input tensor of the model.' }),
  }),
  // "Exactly one of features or inputs" is the domain's rule (inference/tensors.ts), checked
  // once there for every caller, GraphQL or not.
});

builder.mutationFields((t) => ({
  predict: t.field({
    type: PredictionRef,
    description: 'Runs a model on one request and stores the prediction; answers after the row is committed. Needs the predict scope.',
    authScopes: { predict: true },
    args: { input: t.arg({ type: PredictInputRef, required: true, description: 'What to run.' }) },
    complexity: (args, ctx) => predictCost(args.input, ctx),
    resolve: async (_root, { input }, ctx, info) => {
      noteOperation(ctx, { model: input.model, version: input.version ?? undefined });
      const record = await ctx.predictionService.predict({
        ...input,
        // Traffic splits route by request id and field (each aliased predict of an operation is routed on its own; a retry lands where it did).
        routeKey: `${ctx.requestId}/${String(info.path.key)}`,
        features: ctx.tensorVariables.restore(input.features),
        inputs: input.inputs?.map((t) => ({ ...t, data: ctx.tensorVariables.restore(t.data) })),
        apiKeyId: ctx.principal.keyId,
      });
      noteOperation(ctx, { version: record.version, rows: record.inputs[0]?.shape[0] ?? 1 });
      return record;
    },
  }),
}));

builder.subscriptionFields((t) => ({
  predictionCreated: t.field({
    type: PredictionRef,
    description: "Every new prediction (generations included), published after its row is committed; a key without the admin scope hears only its own. Needs the read scope.",
    authScopes: { read: true },
    args: { model: t.arg.string({ description: 'Only predictions of this model.' }) },
    subscribe: (_root, args, ctx) => {
      const owner = ownerOf(ctx.principal);
      const events = ctx.bus.subscribe('prediction.created');
      if (args.model == null && owner === undefined) return events;
      return pipe(events, filter((p: PredictionRecord) => (args.model == null || p.modelName === args.model) && isVisibleTo(owner, p)));
    },
    resolve: (p) => p,
  }),
}));
