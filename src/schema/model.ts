import { MODEL_KINDS } from '../inference/manifest.ts';
import { defaultVersionOf } from '../inference/repository.ts';
import type { BatchingDecision, Model, VersionState } from '../inference/types.ts';
import { VersionStats, type VersionCounters } from '../inference/stats.ts';
import { builder } from './builder.ts';
import { METADATA_LIST_COST } from './cost.ts';
import { TensorSpecRef } from './tensor.ts';

export const ModelKindEnum = builder.enumType('ModelKind', {
  description: "What a model's outputs mean; set by `kind` in its model.json.",
  values: {
    CLASSIFIER: { description: 'Outputs class probabilities; predictions have `label` and `scores`.' },
    REGRESSOR: { description: 'Outputs one number; predictions have `value`.' },
    GENERATOR: { description: 'Generates text token by token.' },
    GENERIC: { description: 'No manifest or no kind: only raw output tensors.' },
  } satisfies Record<(typeof MODEL_KINDS)[number], unknown>,
});

export const ModelStatusEnum = builder.enumType('ModelStatus', {
  description: 'Load state of a model version.',
  values: {
    LOADING: { description: 'The ONNX session is being created.' },
    READY: { description: 'Serving predictions.' },
    FAILED: { description: 'Could not be loaded; `error` says why. Other versions and models are unaffected.' },
    UNLOADED: {
      description: 'Not loaded: left out by the version policy, taken out by unloadModel, or its folder was removed (then it disappears once drained); `error` says which. loadModel loads it.',
    },
  },
});

const BatchingRef = builder.objectRef<BatchingDecision>('Batching').implement({
  description:
    "Whether concurrent requests are stacked into one ONNX run, and why (model.json `batching`; Triton's max_batch_size and max_queue_delay).",
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled', { description: 'True when concurrent requests for this version are stacked along the first dimension.' }),
    reason: t.exposeString('reason', {
      description: 'Why batching is on or off, e.g. "every input and output has first dimension `batch`" or "input `x` has an unnamed first dimension".',
    }),
    maxBatchSize: t.exposeInt('maxBatchSize', { description: 'Rows per stacked ONNX run at most; 0 when batching is off.' }),
    maxQueueDelayMs: t.exposeFloat('maxQueueDelayMs', {
      description: 'How long a request may wait for others, in ms; 0: only until the current event-loop turn ends (and when batching is off).',
    }),
  }),
});

const ModelVersionStatsRef = builder.objectRef<VersionCounters>('ModelVersionStats').implement({
  description: 'Counters since the server started: watch batches form under load.',
  fields: (t) => ({
    runs: t.exposeInt('runs', { description: 'ONNX runs of any kind (predict batches and generation steps).' }),
    requests: t.exposeInt('requests', { description: 'predict requests answered.' }),
    rows: t.exposeInt('rows', { description: 'Rows those requests carried.' }),
    batches: t.exposeInt('batches', { description: 'ONNX runs that served predict requests.' }),
    meanBatchSize: t.exposeFloat('meanBatchSize', { description: 'requests / batches.' }),
    meanQueueDelayMs: t.exposeFloat('meanQueueDelayMs', { description: 'Mean time a request waited in the batching queue, in ms.' }),
    maxQueueDelayMs: t.float({ description: 'Longest time a request waited in the batching queue, in ms.', resolve: (s) => s.queueDelayMaxMs }),
  }),
});

/** The counters of a version that never served. */
const NO_STATS: VersionCounters = Object.freeze(new VersionStats());

export const ModelVersionRef = builder.objectRef<VersionState>('ModelVersion').implement({
  description: 'One numbered version folder of a model (`models/<name>/<version>/model.onnx`).',
  fields: (t) => ({
    version: t.exposeInt('version', { description: 'Positive integer from the folder name.' }),
    status: t.field({ type: ModelStatusEnum, description: 'Load state.', resolve: (v) => v.status }),
    error: t.string({ nullable: true, description: 'Why loading failed (FAILED), or why the version is not loaded (UNLOADED).', resolve: (v) => v.error ?? null }),
    loadedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the session became ready.',
      resolve: (v) => v.served?.loadedAt ?? null,
    }),
    inputs: t.field({ type: [TensorSpecRef], description: 'Inputs, as the session reports them.', complexity: METADATA_LIST_COST, resolve: (v) => [...(v.served ?? v.reported)?.inputs ?? []] }),
    outputs: t.field({ type: [TensorSpecRef], description: 'Outputs, as the session reports them.', complexity: METADATA_LIST_COST, resolve: (v) => [...(v.served ?? v.reported)?.outputs ?? []] }),
    batching: t.field({
      type: BatchingRef,
      description: 'Whether dynamic batching is on for this version, and why.',
      resolve: (v) =>
        v.served?.batching ?? { enabled: false, reason: `version ${v.version} is ${v.status}`, maxBatchSize: 0, maxQueueDelayMs: 0, rowsMustAgree: false },
    }),
    stats: t.field({ type: ModelVersionStatsRef, description: 'Inference counters since start-up.', resolve: (v) => v.served?.stats ?? NO_STATS }),
  }),
});

export const ModelRef = builder.objectRef<Model>('Model').implement({
  description: 'A model in the repository (`models/<name>/`).',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Folder name; what `PredictInput.model` takes.' }),
    description: t.string({
      nullable: true,
      description: 'From model.json.',
      resolve: (m) => m.manifest.description ?? null,
    }),
    kind: t.field({ type: ModelKindEnum, description: 'What the outputs mean.', resolve: (m) => m.manifest.kind }),
    labels: t.stringList({
      nullable: true,
      description: 'Class labels in output order (classifiers).',
      resolve: (m) => m.manifest.labels ?? null,
    }),
    versions: t.field({ type: [ModelVersionRef], description: 'Every version folder, ascending.', complexity: METADATA_LIST_COST, resolve: (m) => [...m.versions] }),
    defaultVersion: t.field({
      type: ModelVersionRef,
      nullable: true,
      description: "Version served when a request names none: model.json's `defaultVersion`, else the newest READY one.",
      resolve: (m) => defaultVersionOf(m) ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  models: t.field({
    type: [ModelRef],
    description: 'Every model in the repository, including those that failed to load.',
    complexity: (_args, ctx) => ({ field: 1, multiplier: Math.max(1, ctx.models.list().length) }),
    resolve: (_root, _args, ctx) => ctx.models.list(),
  }),
  model: t.field({
    type: ModelRef,
    nullable: true,
    description: 'One model by name; null when the repository has none by that name.',
    args: { name: t.arg.string({ required: true, description: 'Model name.' }) },
    resolve: (_root, args, ctx) => ctx.models.get(args.name) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  loadModel: t.field({
    type: ModelVersionRef,
    description:
      "Loads one version folder from disk (or reloads it: the version keeps serving its previous file until the new one is ready, and keeps it if the new one fails), whatever model.json's versionPolicy says, and keeps it loaded until unloadModel. When another version of the model serves, the new one is verified by a replay first. Answers once the version is READY or FAILED; MODEL_NOT_FOUND when the folder does not exist. Needs the admin scope.",
    authScopes: { admin: true },
    args: {
      name: t.arg.string({ required: true, description: 'Model name (folder under the model repository).' }),
      version: t.arg.int({ required: true, description: 'Version folder number.' }),
    },
    resolve: (_root, args, ctx) => ctx.models.loadVersion(args.name, args.version),
  }),
  unloadModel: t.field({
    type: ModelVersionRef,
    description:
      'Takes one version out of traffic: requests already running on it finish, then its session is released and it is listed UNLOADED. Repository polls leave it unloaded until loadModel. Needs the admin scope.',
    authScopes: { admin: true },
    args: {
      name: t.arg.string({ required: true, description: 'Model name.' }),
      version: t.arg.int({ required: true, description: 'Version number.' }),
    },
    resolve: (_root, args, ctx) => ctx.models.unloadVersion(args.name, args.version),
  }),
}));
