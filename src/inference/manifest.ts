import { z } from 'zod';
import { GUARD_METRICS } from './rollout-guard.ts';

export const MODEL_KINDS = ['CLASSIFIER', 'REGRESSOR', 'GENERATOR', 'GENERIC'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** How far the proportions of a reference may sum from 1 (they are written to 4 decimals). */
const PROPORTIONS_SUM_TOLERANCE = 1e-3;

/**
 * A feature's histogram over the training data (src/monitoring/psi.ts reads it): `edges`
 * from the smallest to the largest training value, each greater than the one before, and
 * one proportion per bin between two edges (`proportions.length === edges.length - 1`),
 * summing to 1. A feature constant in training has edges `[v, v]` and proportions `[1]`.
 */
const referenceSchema = z
  .strictObject({
    edges: z.array(z.number()).min(2, { error: 'expected at least 2 edges (the smallest and the largest training value)' }),
    proportions: z.array(z.number().min(0, { error: 'expected a proportion from 0 to 1' }).max(1, { error: 'expected a proportion from 0 to 1' })).min(1),
  })
  .superRefine((ref, ctx) => {
    const { edges, proportions } = ref;
    const constant = edges.length === 2 && edges[0] === edges[1];
    const ascending = edges.every((e, i) => i === 0 || e > edges[i - 1]!);
    if (!constant && !ascending) {
      ctx.addIssue({ code: 'custom', path: ['edges'], message: `expected edges in ascending order, each greater than the one before, got [${edges.join(', ')}]` });
    }
    if (proportions.length !== edges.length - 1) {
      ctx.addIssue({ code: 'custom', path: ['proportions'], message: `expected ${edges.length - 1} proportions (one per bin between ${edges.length} edges), got ${proportions.length}` });
    }
    const sum = proportions.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > PROPORTIONS_SUM_TOLERANCE) {
      ctx.addIssue({ code: 'custom', path: ['proportions'], message: `expected proportions summing to 1, got ${sum}` });
    }
  });

/**
 * `models/<name>/model.json`: optional meaning on top of what the ONNX session reports.
 * Unknown keys are rejected so that a typo fails loudly instead of being ignored.
 */
export const manifestSchema = z.strictObject({
  description: z.string().optional(),
  /** GENERIC when absent. */
  kind: z.enum(MODEL_KINDS).default('GENERIC'),
  /** Class labels, in the order of the classifier's probability output. */
  labels: z.array(z.string()).min(1).optional(),
  /**
   * The columns of the tabular input (`input`), in order, each with an optional allowed range
   * and an optional training `reference` histogram (drift monitoring, src/monitoring/).
   */
  features: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        min: z.number().optional(),
        max: z.number().optional(),
        reference: referenceSchema.optional(),
      }),
    )
    .min(1)
    .optional(),
  /** The input that `features` describes. Default: the model's only input. */
  input: z.string().optional(),
  /** The output holding class probabilities (classifiers) or the value (regressors). Default: the first output. */
  output: z.string().optional(),
  /** Version served when a request names none. Default: the newest READY version (Triton's "latest"). */
  defaultVersion: z.number().int().positive().optional(),
  /**
   * Which version folders are loaded (Triton's version_policy): `{ "latest": { "numVersions": n } }`
   * the n highest numbers, `{ "all": {} }`, or `{ "specific": { "versions": [1, 3] } }`. The
   * others are listed UNLOADED. Default: all (Triton's default is latest 1; this gateway loaded
   * every version before policies existed, and keeps doing so).
   */
  versionPolicy: z
    .union([
      z.strictObject({ latest: z.strictObject({ numVersions: z.number().int().min(1) }) }),
      z.strictObject({ all: z.strictObject({}) }),
      z.strictObject({ specific: z.strictObject({ versions: z.array(z.number().int().positive()).min(1) }) }),
    ])
    .optional(),
  /**
   * Verified swap: a version loaded while another one serves is replayed on the newest stored
   * requests (MODEL_REPLAY_REQUESTS) first; below these bounds it stays out of traffic (FAILED,
   * with the figures). `minAgreement`: share of replayed requests with the served label
   * (classifiers); `maxMeanAbsoluteDifference`: over every output number.
   */
  verify: z
    .strictObject({
      minAgreement: z.number().min(0).max(1).optional(),
      maxMeanAbsoluteDifference: z.number().min(0).optional(),
    })
    .optional(),
  /**
   * Traffic between versions for requests that name none: `split` weights (shares are weight /
   * sum), routed by request id; `guard` returns all traffic to `stableVersion` by itself when a
   * candidate does worse (inference/rollout-guard.ts). `setTrafficSplit` overrides it until
   * `clearTrafficSplit`.
   */
  traffic: z
    .strictObject({
      split: z.array(z.strictObject({ version: z.number().int().positive(), weight: z.number().min(0) })).min(1),
      guard: z
        .strictObject({
          metric: z.enum(GUARD_METRICS),
          stableVersion: z.number().int().positive(),
          threshold: z.number().min(0),
          minSamples: z.number().int().min(1).default(50),
        })
        .optional(),
    })
    .refine((t) => t.split.some((w) => w.weight > 0), { message: 'traffic.split: at least one weight must be above 0' })
    .refine((t) => new Set(t.split.map((w) => w.version)).size === t.split.length, { message: 'traffic.split: a version appears twice' })
    .refine((t) => !t.guard || t.split.some((w) => w.version === t.guard!.stableVersion && w.weight > 0), {
      message: 'traffic.guard.stableVersion must take part in the split with a weight above 0',
    })
    .optional(),
  /**
   * Dynamic batching (Triton's max_batch_size / max_queue_delay): rows per ONNX run at
   * most (0 or 1: off), and how long a request may wait for company (0: only until the
   * current event-loop turn ends).
   */
  batching: z
    .strictObject({
      maxBatchSize: z.number().int().min(0).default(64),
      maxQueueDelayMs: z.number().min(0).max(1000).default(0),
    })
    .optional(),
  /**
   * Warm-up inputs (Triton's model_warmup): every input of the model with a concrete shape
   * and its data (numbers in row-major order, `"zeros"` or `"random"`). The run must
   * succeed, else the version is FAILED. Without it the gateway warms up on zeros with
   * dynamic dimensions 1, and a failure there is only a warning.
   */
  warmup: z
    .strictObject({
      inputs: z
        .array(
          z.strictObject({
            name: z.string().min(1),
            shape: z.array(z.number().int().min(0)),
            data: z.union([z.array(z.number()), z.enum(['zeros', 'random'])]).default('zeros'),
          }),
        )
        .min(1),
    })
    .optional(),
  /**
   * Response cache (Triton's response_cache), for deterministic models: a request whose
   * input tensors equal an earlier one's gets the earlier outputs without an ONNX run (still
   * stored, marked `cached`). `ttlMs`: how long an answer is reused (default: until evicted in
   * process, one hour in Redis). Off when absent. Never for generators.
   */
  responseCache: z.strictObject({ ttlMs: z.number().int().positive().optional() }).optional(),
  /** Generators: the string of each token id, in id order (the length of the logits' last dimension). */
  vocabulary: z.array(z.string()).min(1).optional(),
  /** Free-form training figures (held-out accuracy, R², rows, seed), shown as-is. */
  metrics: z.record(z.string(), z.union([z.number(), z.string()])).optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

export const EMPTY_MANIFEST: Manifest = manifestSchema.parse({});
