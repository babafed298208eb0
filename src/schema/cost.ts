import type { FieldComplexityValue } from '@pothos/plugin-complexity';
import type { Context } from './builder.ts';

/**
 * What each field adds to an operation's cost (transport/use-cost-limit.ts sums it before
 * execution, with the request's variables). Every field costs 1 and a list multiplies what is
 * selected under it by 10 (Pothos' defaults); the fields below count what the request itself
 * says it will make, so one small document cannot ask for unbounded work:
 *
 * - `predict`: 1 per started 200 tensor elements (`features`, or every `inputs[].data`);
 * - `generate` (mutation and subscription): 1 per token of `maxTokens` (default 64);
 * - a page (`predictions`, `batchJobs`, `BatchJob.results`): its `first` multiplies what is
 *   selected in it (its `edges` add no multiplier of their own);
 * - `scores(top)`: `top` multiplies the class fields (10 without it);
 * - `ModelVersion.drift(window)`: 1 per started 100 stored predictions of `window` (read and binned);
 * - model metadata, held in memory: `models` multiplies by the number of models served, and a
 *   model's `versions` and a version's `inputs` and `outputs` add no multiplier.
 *
 * Values out of an argument's range count as its nearest bound, so they reach the argument's
 * own check (BAD_USER_INPUT) instead of being refused for their cost.
 */
export const ELEMENTS_PER_COST_UNIT = 200;

const clamp = (value: number, min: number, max: number) => Math.min(Math.max(value, min), max);

/** Tensor elements of a predict input, counting big variable lists through their token (no copy). */
export function predictCost(
  input: { features?: readonly number[] | null; inputs?: ReadonlyArray<{ data: readonly number[] }> | null },
  ctx: Pick<Context, 'tensorVariables'>,
): FieldComplexityValue {
  let elements = ctx.tensorVariables.restore(input.features)?.length ?? 0;
  for (const tensor of input.inputs ?? []) elements += ctx.tensorVariables.restore(tensor.data).length;
  return { field: Math.max(1, Math.ceil(elements / ELEMENTS_PER_COST_UNIT)), multiplier: 1 };
}

/** Each token is one model run. */
export const generateCost = (input: { maxTokens?: number | null }): FieldComplexityValue => ({
  field: clamp(input.maxTokens ?? 64, 1, 512),
  multiplier: 1,
});

/** A page of `first` (default `byDefault`) items multiplies what is selected in each. */
export const pageCost = (first: number | null | undefined, byDefault: number, max: number): FieldComplexityValue => ({
  field: 1,
  multiplier: clamp(first ?? byDefault, 1, max),
});

/** A connection's `edges`: the page's `first` already counts them. */
export const EDGES_COST: FieldComplexityValue = { field: 1, multiplier: 1 };

/** Lists of model metadata: read from memory, a handful of items each. */
export const METADATA_LIST_COST: FieldComplexityValue = { field: 1, multiplier: 1 };

/** Stored predictions per cost unit of `ModelVersion.drift`. */
export const DRIFT_ROWS_PER_COST_UNIT = 100;

/** `drift(window)` reads `window` stored predictions. */
export const driftCost = (window: number | null | undefined, byDefault: number, max: number): FieldComplexityValue => ({
  field: Math.ceil(clamp(window ?? byDefault, 1, max) / DRIFT_ROWS_PER_COST_UNIT),
  multiplier: 1,
});
