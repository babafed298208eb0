// Training reference histograms for model.json `features[].reference` (drift monitoring:
// src/monitoring/psi.ts bins live values into them). Deterministic: the same training rows
// give the same numbers, so rebuilds stay byte-identical.
import { round4, type FeatureReference } from './manifest.ts';

export const REFERENCE_BINS = 10;

/**
 * Quantile bins over `values`: a cut near each k/bins quantile, placed halfway between two
 * neighbouring distinct values so that no training value sits on a cut. Where the quantile
 * falls inside a run of equal values (discrete features: pixel intensities, a sex code) the
 * cut moves to the nearest end of the run, and cuts that coincide are merged: a feature
 * with three values gets three bins, one per value, and a constant feature one bin.
 */
export function quantileReference(values: readonly number[], bins = REFERENCE_BINS): FeatureReference {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) throw new Error('no training values');
  const cutPositions = new Set<number>();
  for (let k = 1; k < bins; k++) {
    const target = Math.round((k * n) / bins);
    const position = nearestBoundary(sorted, target);
    if (position !== undefined) cutPositions.add(position);
  }
  const cuts = [...cutPositions].sort((a, b) => a - b).map((i) => cutBetween(sorted[i - 1]!, sorted[i]!));
  const edges = [sorted[0]!, ...cuts, sorted[n - 1]!];
  const counts = new Array<number>(edges.length - 1).fill(0);
  let bin = 0;
  for (const v of sorted) {
    while (bin < counts.length - 1 && v >= edges[bin + 1]!) bin++;
    counts[bin]!++;
  }
  return { edges, proportions: counts.map((c) => round4(c / n)) };
}

/** The index i nearest `target` with sorted[i - 1] < sorted[i] (ties: the lower one); undefined for a constant run. */
function nearestBoundary(sorted: readonly number[], target: number): number | undefined {
  const isBoundary = (i: number) => i > 0 && i < sorted.length && sorted[i - 1]! < sorted[i]!;
  for (let d = 0; d < sorted.length; d++) {
    if (isBoundary(target - d)) return target - d;
    if (isBoundary(target + d)) return target + d;
  }
  return undefined;
}

/** Halfway between lo < hi, rounded to the fewest decimals (up to 6) that keep it strictly between. */
function cutBetween(lo: number, hi: number): number {
  const mid = (lo + hi) / 2;
  for (let decimals = 0; decimals <= 6; decimals++) {
    const rounded = Math.round(mid * 10 ** decimals) / 10 ** decimals;
    if (rounded > lo && rounded < hi) return rounded;
  }
  return mid;
}

/** One reference per column of `rows`. */
export function featureReferences(rows: readonly number[][]): FeatureReference[] {
  const width = rows[0]?.length ?? 0;
  return Array.from({ length: width }, (_, j) => quantileReference(rows.map((r) => r[j]!)));
}
