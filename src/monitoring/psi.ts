// Population stability index of live values against a training reference histogram.
// Pure: no I/O, so the figures can be checked against hand-computed ones.

/**
 * A feature's training histogram (model.json `features[].reference`): `edges` are the
 * bin boundaries, the first the smallest and the last the largest training value, so
 * `proportions.length === edges.length - 1`. Bin i is [edges[i], edges[i+1]), the last
 * one closed on the right. A feature constant in training has edges [v, v] and one bin.
 */
export interface ReferenceHistogram {
  edges: readonly number[];
  proportions: readonly number[];
}

/**
 * Shares below this count as this in the PSI sum, on both sides: an empty bin would
 * otherwise make ln(actual / expected) infinite. 1e-4 is the usual choice; with it, a bin
 * expected at 10% and empty live adds (0.1 - 0.0001) × ln(0.1 / 0.0001) ≈ 0.69.
 */
export const PSI_EPSILON = 1e-4;

/**
 * The bin a value falls in. Values below the first edge go to the first bin and values
 * above the last edge to the last (they are also counted as out of range by `binValues`).
 */
export function binOf(reference: ReferenceHistogram, value: number): number {
  const { edges } = reference;
  const last = edges.length - 2;
  // Binary search for the last inner edge <= value: bins are few, but features can be many.
  let lo = 0;
  let hi = last;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (value >= edges[mid]!) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface BinnedValues {
  /** Values per bin, in the reference's bin order. */
  counts: number[];
  /** Values below the first edge or above the last (the range seen in training). */
  outOfRange: number;
  total: number;
}

/** Counts `values` into the reference's bins. */
export function binValues(reference: ReferenceHistogram, values: Iterable<number>): BinnedValues {
  const counts = new Array<number>(reference.proportions.length).fill(0);
  const low = reference.edges[0]!;
  const high = reference.edges.at(-1)!;
  let outOfRange = 0;
  let total = 0;
  for (const value of values) {
    counts[binOf(reference, value)]!++;
    if (value < low || value > high) outOfRange++;
    total++;
  }
  return { counts, outOfRange, total };
}

/**
 * PSI = Σ (actualᵢ − expectedᵢ) × ln(actualᵢ / expectedᵢ) over the bins, with both shares
 * raised to at least `epsilon`. `expected` is normalised to sum 1 (manifests store
 * proportions to 4 decimals). 0: same distribution; the usual reading is < 0.1 stable,
 * 0.1 to 0.2 a moderate shift, > 0.2 a significant one. NaN when `actual` has no values.
 */
export function psi(expected: readonly number[], actualCounts: readonly number[], epsilon = PSI_EPSILON): number {
  if (expected.length !== actualCounts.length) {
    throw new Error(`expected ${expected.length} bins, got ${actualCounts.length}`);
  }
  const expectedSum = expected.reduce((a, b) => a + b, 0);
  const actualSum = actualCounts.reduce((a, b) => a + b, 0);
  if (actualSum === 0) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.max(expected[i]! / expectedSum, epsilon);
    const a = Math.max(actualCounts[i]! / actualSum, epsilon);
    sum += (a - e) * Math.log(a / e);
  }
  return sum;
}
