// Seeded randomness for training. Every random choice in models:build goes
// through one of these generators so a given seed always yields the same split,
// the same initial weights and the same mini-batch order, hence identical bytes.

/** A function returning uniform floats in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: tiny 32-bit PRNG. Pure integer arithmetic (Math.imul, shifts), so
 * the sequence is identical on every platform and Node version.
 */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
