import { describe, expect, it } from 'vitest';
import { binOf, binValues, psi, PSI_EPSILON } from '../src/monitoring/psi.ts';

const reference = { edges: [0, 1, 2, 4], proportions: [0.25, 0.25, 0.5] };

describe('binning against a reference histogram', () => {
  it('puts a value in [edge i, edge i+1), the last bin closed, and values outside the range in the end bins', () => {
    expect([-1, 0, 0.99, 1, 1.5, 2, 3.99, 4, 5].map((v) => binOf(reference, v))).toEqual([0, 0, 0, 1, 1, 2, 2, 2, 2]);
  });

  it('counts values per bin and those outside the training range', () => {
    expect(binValues(reference, [-1, 0.5, 1.5, 1.7, 3, 4, 9])).toEqual({ counts: [2, 2, 3], outOfRange: 2, total: 7 });
  });

  it('has one bin for a feature constant in training', () => {
    const constant = { edges: [0, 0], proportions: [1] };
    expect(binValues(constant, [0, 0, 3])).toEqual({ counts: [3], outOfRange: 1, total: 3 });
  });
});

describe('population stability index', () => {
  it('is 0 for the same distribution', () => {
    expect(psi([0.25, 0.25, 0.5], [10, 10, 20])).toBe(0);
  });

  it('equals the hand-computed value: (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5) = 0.25 ln 3', () => {
    expect(psi([0.5, 0.5], [3, 1])).toBeCloseTo(0.25 * Math.log(3), 12);
    expect(psi([0.5, 0.5], [3, 1])).toBeCloseTo(0.274653, 6);
  });

  it('raises an empty bin to epsilon (1e-4): (1 - 0.5) ln 2 + (0.0001 - 0.5) ln(0.0001 / 0.5) ≈ 4.60432', () => {
    expect(PSI_EPSILON).toBe(1e-4);
    expect(psi([0.5, 0.5], [4, 0])).toBeCloseTo(4.60432, 5);
  });

  it('normalises expected proportions stored to 4 decimals', () => {
    expect(psi([0.3333, 0.3333, 0.3333], [5, 5, 5])).toBeCloseTo(0, 12);
  });

  it('is NaN without live values, and refuses a different number of bins', () => {
    expect(psi([0.5, 0.5], [0, 0])).toBeNaN();
    expect(() => psi([0.5, 0.5], [1, 1, 1])).toThrow('expected 2 bins, got 3');
  });
});
