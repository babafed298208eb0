import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';
import { z } from 'zod';
import { NotFoundError } from '../errors.ts';
import { noteOperation } from '../observability/use-operation-log.ts';
import { FINAL_STATUSES, type BatchJobRecord, type BatchRowResult } from '../serving/batch-job-store.ts';
import { isVisibleTo, ownerOf } from '../auth/principal.ts';
import { builder, type Context } from './builder.ts';
import { EDGES_COST, pageCost } from './cost.ts';
import { ModelRef } from './model.ts';
import { cursorCodec, pageInfoOf, PageInfoRef } from './pagination.ts';
import { PredictionRef } from './prediction.ts';

const FileScalar = builder.addScalarType(
  'File',
  new GraphQLScalarType<string, never>({
    name: 'File',
    description:
      'A file sent with the GraphQL multipart request (fields `operations`, `map`, then the file parts: https://github.com/jaydenseric/graphql-multipart-request-spec). The server streams it to disk. Input only.',
    parseValue: (value) => {
      if (typeof value !== 'string') throw new GraphQLError('File: expected a file sent with the GraphQL multipart request');
      return value;
    },
    parseLiteral: (ast) => {
      if (ast.kind !== Kind.STRING) throw new GraphQLError('File: expected a file sent with the GraphQL multipart request');
      return ast.value;
    },
    serialize: () => {
      throw new GraphQLError('File is an input type');
    },
  }),
  {},
);

export const BatchJobStatusEnum = builder.enumType('BatchJobStatus', {
  description: 'Where a batch job is.',
  values: {
    QUEUED: { description: 'Written with all its rows; waits for the worker.' },
    RUNNING: { description: 'Rows are being scored, chunk by chunk.' },
    SUCCEEDED: { description: 'Every row was scored (some may have failed alone: see `failed`).' },
    FAILED: { description: 'Stopped by an error that is not one row\'s fault; see `error`.' },
    CANCELLED: { description: 'Cancelled; the rows done before stay.' },
  },
});

const BatchFormatEnum = builder.enumType('BatchFormat', {
  description: 'How an uploaded file is written.',
  values: {
    CSV: { description: 'One row of numbers per line, comma separated, in feature order; a first line without any number is a header.' },
    JSONL: { description: 'JSON Lines: per line an array of numbers, or `{"features": [...]}`, or `{"inputs": [{name, datatype, shape, data}]}`.' },
  },
});

const BatchRowErrorCodeEnum = builder.enumType('BatchRowErrorCode', {
  description: 'Why one row of a batch job failed.',
  values: {
    BAD_USER_INPUT: { description: 'The row cannot be read, or does not fit the model (the same checks as `predict`).' },
    INFERENCE_FAILED: { description: 'The model failed on this row alone.' },
  },
});

const BatchRowErrorRef = builder.objectRef<NonNullable<BatchRowResult['error']>>('BatchRowError').implement({
  description: 'The error of one row; the job went on.',
  fields: (t) => ({
    code: t.field({ type: BatchRowErrorCodeEnum, description: 'Kind of failure.', resolve: (e) => e.code }),
    message: t.exposeString('message', { description: 'What is wrong with the row.' }),
  }),
});

const BatchResultRef = builder.objectRef<BatchRowResult>('BatchResult').implement({
  description: 'One done row of a batch job: its prediction, or its error.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: '0-based position of the row in the submitted rows (a CSV header and blank lines are not rows).' }),
    prediction: t.field({
      type: PredictionRef,
      nullable: true,
      description: 'The stored prediction; null when the row failed.',
      resolve: (r, _args, ctx) => (r.predictionId ? ctx.loaders.predictionById.load(r.predictionId) : null),
    }),
    error: t.field({ type: BatchRowErrorRef, nullable: true, description: 'Why the row failed; null when it has a prediction.', resolve: (r) => r.error }),
  }),
});

const resultCursors = cursorCodec('batch-result');
const jobCursors = cursorCodec('batch-job');

const BatchResultEdgeRef = builder.objectRef<BatchRowResult>('BatchResultEdge').implement({
  description: 'A row result and its cursor.',
  fields: (t) => ({
    cursor: t.string({ description: 'Opaque position; pass as `after` to continue.', resolve: (r) => resultCursors.encode(r.index) }),
    node: t.field({ type: BatchResultRef, description: 'The row result.', resolve: (r) => r }),
  }),
});

const BatchResultConnectionRef = builder.objectRef<{ results: BatchRowResult[]; hasNextPage: boolean }>('BatchResultConnection').implement({
  description: 'A page of the rows done so far, in row order.',
  fields: (t) => ({
    edges: t.field({ type: [BatchResultEdgeRef], description: 'The page.', complexity: EDGES_COST, resolve: (c) => c.results }),
    pageInfo: t.field({
      type: PageInfoRef,
      description: 'Where this page sits.',
      resolve: (c) => pageInfoOf(c.results, c.hasNextPage, (r) => resultCursors.encode(r.index)),
    }),
  }),
});

const MAX_RESULTS_PAGE = 1000;
const MAX_JOBS_PAGE = 100;
const pageSize = (max: number) =>
  z
    .number()
    .int()
    .min(1, { error: `expected an integer from 1 to ${max}` })
    .max(max, { error: `expected an integer from 1 to ${max}` });

function decodeIndex(after: string): number {
  const index = Number(resultCursors.decode(after));
  return Number.isInteger(index) ? index : -1;
}

export const BatchJobRef = builder.objectRef<BatchJobRecord>('BatchJob').implement({
  description: 'Rows scored in the background by one model version. Jobs and their rows live in the database: a restart resumes a running job where its last committed chunk ended.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'UUIDv7: sorts by creation time.' }),
    modelName: t.exposeString('modelName', { description: 'Name of the model the rows run on.' }),
    model: t.field({
      type: ModelRef,
      nullable: true,
      description: 'The model, while it is still in the repository; jobs outlive models.',
      resolve: (j, _args, ctx) => ctx.models.get(j.modelName) ?? null,
    }),
    version: t.exposeInt('version', { description: 'The version every row runs on, decided at submit.' }),
    status: t.field({ type: BatchJobStatusEnum, description: 'Where the job is.', resolve: (j) => j.status }),
    format: t.field({ type: BatchFormatEnum, description: 'How the rows were sent (inline `rows` are JSONL).', resolve: (j) => j.format }),
    total: t.exposeInt('total', { description: 'Rows in the job.' }),
    processed: t.exposeInt('processed', { description: 'Rows done and committed, failed ones included.' }),
    failed: t.exposeInt('failed', { description: 'Rows that failed alone (see `results`).' }),
    createdAt: t.field({ type: 'DateTime', description: 'When the job was submitted.', resolve: (j) => j.createdAt }),
    startedAt: t.field({ type: 'DateTime', nullable: true, description: 'When the worker first took it.', resolve: (j) => j.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it reached a final status.', resolve: (j) => j.finishedAt }),
    error: t.exposeString('error', { nullable: true, description: 'Why the job FAILED.' }),
    idempotencyKey: t.exposeString('idempotencyKey', { nullable: true, description: 'The key it was submitted with.' }),
    resultsCsvUrl: t.string({ description: 'Path of the whole results as CSV (streamed; rows done so far while the job runs).', resolve: (j) => `/batch-jobs/${j.id}/results.csv` }),
    resultsJsonlUrl: t.string({ description: 'Path of the whole results as JSON Lines.', resolve: (j) => `/batch-jobs/${j.id}/results.jsonl` }),
    results: t.field({
      type: BatchResultConnectionRef,
      description: `The rows done so far, in row order, ${MAX_RESULTS_PAGE} at most per page. Needs the read scope.`,
      authScopes: { read: true },
      complexity: (args) => pageCost(args.first, 100, MAX_RESULTS_PAGE),
      args: {
        first: t.arg.int({ defaultValue: 100, description: `Page size, 1 to ${MAX_RESULTS_PAGE}.`, validate: pageSize(MAX_RESULTS_PAGE) }),
        after: t.arg.string({ description: "Continue after this cursor (a previous page's `pageInfo.endCursor`)." }),
      },
      resolve: async (job, args, ctx) => {
        const first = args.first ?? 100;
        const rows = await ctx.batchJobStore.results(job.id, first + 1, args.after != null ? decodeIndex(args.after) : undefined);
        return { results: rows.slice(0, first), hasNextPage: rows.length > first };
      },
    }),
  }),
});

const BatchJobEdgeRef = builder.objectRef<BatchJobRecord>('BatchJobEdge').implement({
  description: 'A batch job and its cursor.',
  fields: (t) => ({
    cursor: t.string({ description: 'Opaque position; pass as `after` to continue.', resolve: (j) => jobCursors.encode(j.id) }),
    node: t.field({ type: BatchJobRef, description: 'The job.', resolve: (j) => j }),
  }),
});

const BatchJobConnectionRef = builder.objectRef<{ records: BatchJobRecord[]; hasNextPage: boolean }>('BatchJobConnection').implement({
  description: 'A page of batch jobs, newest first.',
  fields: (t) => ({
    edges: t.field({ type: [BatchJobEdgeRef], description: 'The page.', complexity: EDGES_COST, resolve: (c) => c.records }),
    pageInfo: t.field({ type: PageInfoRef, description: 'Where this page sits.', resolve: (c) => pageInfoOf(c.records, c.hasNextPage, (j) => jobCursors.encode(j.id)) }),
  }),
});

const BatchJobInputRef = builder.inputType('BatchJobInput', {
  description: 'A batch job: exactly one of `rows` or `file`.',
  fields: (t) => ({
    model: t.string({ required: true, description: 'Model name.' }),
    version: t.int({ description: "Version to run; default: the model's default version when the job is submitted." }),
    rows: t.field({ type: t.listRef(t.listRef('Float', { required: true }), { required: true }), description: 'Rows of features, as in `predict`\'s `features`, sent inline (the 4 MB body limit applies; upload bigger sets as a file).' }),
    file: t.field({ type: FileScalar, description: 'A CSV or JSON Lines file (see `BatchFormat`), uploaded with the multipart request; up to MAX_UPLOAD_BYTES.' }),
    format: t.field({ type: BatchFormatEnum, description: 'Format of `file`; default: from its name (.csv, .jsonl, .ndjson) or media type, else from its first character.' }),
    notifyUrl: t.string({ description: 'When the job ends, its JSON summary is POSTed here (retried; a failed notification never fails the job).' }),
    idempotencyKey: t.string({ description: 'Submitting again with the same key returns the job made the first time (1 to 200 characters).' }),
  }),
});

builder.queryFields((t) => ({
  batchJob: t.field({
    type: BatchJobRef,
    nullable: true,
    description: 'One batch job; null when there is none with this id (or another API key submitted it, for a key without the admin scope). Needs the read scope.',
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true, description: 'The job id.' }) },
    resolve: async (_root, args, ctx) => {
      const job = await ctx.batchJobStore.get(String(args.id));
      return job && isVisibleTo(ownerOf(ctx.principal), job) ? job : null;
    },
  }),
  batchJobs: t.field({
    type: BatchJobConnectionRef,
    description: 'Batch jobs, newest first; a key without the admin scope sees only its own. Needs the read scope.',
    authScopes: { read: true },
    complexity: (args) => pageCost(args.first, 20, MAX_JOBS_PAGE),
    args: {
      status: t.arg({ type: BatchJobStatusEnum, description: 'Only jobs in this status.' }),
      first: t.arg.int({ defaultValue: 20, description: `Page size, 1 to ${MAX_JOBS_PAGE}.`, validate: pageSize(MAX_JOBS_PAGE) }),
      after: t.arg.string({ description: "Continue after this cursor (a previous page's `pageInfo.endCursor`)." }),
    },
    resolve: (_root, args, ctx) => ctx.batchJobStore.page({ status: args.status, apiKeyId: ownerOf(ctx.principal) }, args.first ?? 20, args.after != null ? jobCursors.decode(args.after) : undefined),
  }),
}));

builder.mutationFields((t) => ({
  submitBatchJob: t.field({
    type: BatchJobRef,
    description: 'Queues a batch job and answers at once (QUEUED), after the job and all its rows are committed. Watch it with `batchJobProgress`. Needs the predict scope.',
    authScopes: { predict: true },
    args: { input: t.arg({ type: BatchJobInputRef, required: true, description: 'What to run.' }) },
    resolve: async (_root, { input }, ctx) => {
      noteOperation(ctx, { model: input.model, version: input.version ?? undefined });
      const job = await ctx.batchJobs.submit({
        ...input,
        rows: input.rows?.map((row) => ctx.tensorVariables.restore(row)),
        file: input.file != null ? ctx.uploads.take(input.file, ['input', 'file']) : null,
        apiKeyId: ctx.principal.keyId,
      });
      noteOperation(ctx, { version: job.version, rows: job.total });
      return job;
    },
  }),
  cancelBatchJob: t.field({
    type: BatchJobRef,
    description: 'Cancels a QUEUED or RUNNING job: it stops before its next chunk (the chunk in flight is not committed); rows done stay. A finished job is returned as it is. NOT_FOUND for an unknown id (and for another API key\'s job, for a key without the admin scope). Needs the predict scope.',
    authScopes: { predict: true },
    args: { id: t.arg.id({ required: true, description: 'The job id.' }) },
    resolve: (_root, args, ctx) => ctx.batchJobs.cancel(String(args.id), ownerOf(ctx.principal)),
  }),
}));

/**
 * The job now, then every change until it is final. Subscribes to the bus before reading
 * the job, so no change between the read and the subscription is missed; an unknown id is
 * refused before the stream starts (NOT_FOUND).
 */
async function progressOf(ctx: Context, id: string): Promise<AsyncGenerator<BatchJobRecord>> {
  const events = ctx.bus.subscribe('batch-job.progress');
  const current = await ctx.batchJobStore.get(id).catch(async (error: unknown) => {
    await events.return?.();
    throw error;
  });
  if (!current || !isVisibleTo(ownerOf(ctx.principal), current)) {
    await events.return?.();
    throw new NotFoundError('batch job', id);
  }
  return (async function* () {
    try {
      yield current;
      if (FINAL_STATUSES.has(current.status)) return;
      let last = current;
      for await (const job of events) {
        if (job.id !== id) continue;
        // An event older than what was read is stale.
        if (!FINAL_STATUSES.has(job.status) && job.processed < last.processed) continue;
        last = job;
        yield job;
        if (FINAL_STATUSES.has(job.status)) return;
      }
    } finally {
      await events.return?.();
    }
  })();
}

builder.subscriptionFields((t) => ({
  batchJobProgress: t.field({
    type: BatchJobRef,
    description: "A batch job as it is now, then again after each committed chunk and on every status change; the stream ends after the final status. NOT_FOUND for an unknown id (and for another API key's job, for a key without the admin scope). Needs the read scope.",
    authScopes: { read: true },
    args: { id: t.arg.id({ required: true, description: 'The job id.' }) },
    subscribe: (_root, args, ctx) => progressOf(ctx, String(args.id)),
    resolve: (j) => j,
  }),
}));
