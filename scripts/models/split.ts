// Deterministic train/test splits. build.ts and verify.ts both call these with
// the seed recorded in model.json, so verify sees exactly the held-out rows the
// build measured.
import { mulberry32, shuffled } from './prng.ts';

export interface Split {
  /** Row indices, ascending. */
  train: number[];
  /** Row indices, ascending. */
  test: number[];
}

/**
 * Per class (in class order), shuffle that class's rows and hold out
 * round(count × testFraction) of them, so both splits keep the class balance.
 */
export function stratifiedSplit(y: readonly number[], testFraction: number, seed: number): Split {
  const rng = mulberry32(seed);
  const classes = [...new Set(y)].sort((a, b) => a - b);
  const train: number[] = [];
  const test: number[] = [];
  for (const cls of classes) {
    const rows = shuffled(
      y.flatMap((c, i) => (c === cls ? [i] : [])),
      rng,
    );
    const nTest = Math.round(rows.length * testFraction);
    test.push(...rows.slice(0, nTest));
    train.push(...rows.slice(nTest));
  }
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
}

/** Plain shuffled split for regression targets. */
export function randomSplit(n: number, testFraction: number, seed: number): Split {
  const rows = shuffled(
    Array.from({ length: n }, (_, i) => i),
    mulberry32(seed),
  );
  const nTest = Math.round(n * testFraction);
  return {
    train: rows.slice(nTest).sort((a, b) => a - b),
    test: rows.slice(0, nTest).sort((a, b) => a - b),
  };
}

export function pick<T>(items: readonly T[], indices: readonly number[]): T[] {
  return indices.map((i) => items[i]!);
}
