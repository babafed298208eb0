/** mulberry32: a small seeded PRNG, so the same seed gives the same text. Returns [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SamplingOptions {
  /** 0 picks the most likely token (greedy); higher flattens the distribution. */
  temperature: number;
  /** Sample only among the k most likely tokens. */
  topK?: number | null;
}

/** Picks the next token id from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, random: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (options.temperature === 0) return best;

  let candidates = Array.from({ length: logits.length }, (_, i) => i);
  if (options.topK != null && options.topK < logits.length) {
    candidates.sort((a, b) => logits[b]! - logits[a]! || a - b);
    candidates = candidates.slice(0, options.topK);
  }
  const max = logits[best]!;
  const weights = candidates.map((i) => Math.exp((logits[i]! - max) / options.temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let k = 0; k < candidates.length; k++) {
    r -= weights[k]!;
    if (r < 0) return candidates[k]!;
  }
  return candidates.at(-1)!;
}
