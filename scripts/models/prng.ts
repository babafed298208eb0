// Seeded randomness for training. Every random choice in models:build goes
// through one of these generators so a given seed always yields the same split,
// the same initial weights and the same mini-batch order, hence identical bytes.

/** A function returning uniform floats in [0, 1). */
export type Rng = () => number;

// mulberry32, shared with the server's seeded sampling: pure integer arithmetic
// (Math.imul, shifts), so the sequence is identical on every platform and Node version.
export { seededRandom as mulberry32 } from '../../src/inference/sampling.ts';

/** Fisher–Yates shuffle; returns a new array and leaves `items` untouched. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}
