import { describe, expect, it } from 'vitest';
import { manifestSchema } from '../src/inference/manifest.ts';
import { binValues } from '../src/monitoring/psi.ts';
import { quantileReference } from '../scripts/models/reference.ts';

describe('training reference histograms (models:build)', () => {
  it('cuts halfway between values at the quantiles: 1..10 in 5 bins of 20%', () => {
    expect(quantileReference([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], 5)).toEqual({ edges: [1, 2.5, 4.5, 6.5, 8.5, 10], proportions: [0.2, 0.2, 0.2, 0.2, 0.2] });
  });

  it('gives a discrete feature one bin per value, and a constant feature one bin', () => {
    expect(quantileReference([0, 0, 0, 1, 1, 1, 2, 2, 2])).toEqual({ edges: [0, 0.5, 1.5, 2], proportions: [0.3333, 0.3333, 0.3333] });
    expect(quantileReference([1, 1, 2, 2, 2, 2, 2, 2, 2, 2])).toEqual({ edges: [1, 1.5, 2], proportions: [0.2, 0.8] });
    expect(quantileReference([7, 7, 7])).toEqual({ edges: [7, 7], proportions: [1] });
  });

  it('bins its own training values back into its proportions', () => {
    const values = Array.from({ length: 200 }, (_, i) => Math.round(Math.sin(i) * 1000) / 100);
    const ref = quantileReference(values);
    const { counts, outOfRange } = binValues(ref, values);
    expect(outOfRange).toBe(0);
    expect(counts.map((c) => Math.round((c / values.length) * 10_000) / 10_000)).toEqual(ref.proportions);
  });
});

describe('model.json features[].reference', () => {
  const withReference = (reference: unknown) => manifestSchema.safeParse({ features: [{ name: 'x', min: 0, max: 10, reference }] });
  const messages = (reference: unknown) => {
    const parsed = withReference(reference);
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('takes ascending edges with one proportion per bin summing to 1, and a constant feature [v, v]', () => {
    expect(withReference({ edges: [0, 1, 2], proportions: [0.4, 0.6] }).success).toBe(true);
    expect(withReference({ edges: [3, 3], proportions: [1] }).success).toBe(true);
  });

  it('refuses edges out of order, a wrong number of proportions, proportions not summing to 1, and unknown keys', () => {
    expect(messages({ edges: [0, 2, 1], proportions: [0.5, 0.5] })).toEqual(['features.0.reference.edges: expected edges in ascending order, each greater than the one before, got [0, 2, 1]']);
    expect(messages({ edges: [0, 1, 1, 2], proportions: [0.5, 0.2, 0.3] })).toEqual(['features.0.reference.edges: expected edges in ascending order, each greater than the one before, got [0, 1, 1, 2]']);
    expect(messages({ edges: [0, 1, 2], proportions: [1] })).toEqual(['features.0.reference.proportions: expected 2 proportions (one per bin between 3 edges), got 1']);
    expect(messages({ edges: [0, 1, 2], proportions: [0.5, 0.4] })).toEqual(['features.0.reference.proportions: expected proportions summing to 1, got 0.9']);
    expect(messages({ edges: [0], proportions: [1] })).toContain('features.0.reference.edges: expected at least 2 edges (the smallest and the largest training value)');
    expect(messages({ edges: [0, 1], proportions: [1], bins: 1 })[0]).toMatch(/^features\.0\.reference: /);
  });
});
