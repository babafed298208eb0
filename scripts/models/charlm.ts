// Character-level language model for models/fortune, trained on the BSD fortune
// corpus (datasets/fortunes/). The model is an interpolated modified Kneser-Ney
// character n-gram (Chen & Goodman 1999): P(next char | last order-1 chars).
//
// Export (see graphs.ts, charNgramOnnx): every context the model keeps (count
// pruning by minContextCount; for models/fortune see catalog.ts) gets one table
// row holding its complete next-character distribution, already interpolated
// with all shorter contexts and quantised to uint8 logits (-log2 p in steps of
// logitStepBits; LogSoftmax in the graph renormalises).
// A context that was pruned or never seen uses the row of its longest kept
// suffix, which is what the graph finds with one cuckoo-hash probe pair per
// context length. The graph therefore computes exactly what `contextRow` and
// `rowLogits` below compute, and bits/char measured here is what onnxruntime gives.
//
// Determinism: counts live in Maps filled in corpus order, rows are ordered by
// (context length, key), the hash is built by a fixed insertion order, so one
// seed always yields the same bytes.
import { randomSplit, pick, type Split } from './split.ts';

export interface CharNgramOptions {
  /** n of the n-gram: the next character is predicted from the previous order - 1. */
  order: number;
  /** A character is in the vocabulary when it occurs at least this often in the normalised corpus. */
  minCharCount: number;
  /**
   * minContextCount[L]: a context of L characters gets its own table row when it
   * precedes at least this many training characters; otherwise its longest kept
   * suffix stands in. Must not decrease with L (so kept contexts are suffix-closed).
   */
  minContextCount: number[];
  /** Quantisation step of the stored logits, in bits. */
  logitStepBits: number;
  /** Target fill of the cuckoo hash table (kept contexts / slots); below 0.5 for two choices. */
  hashLoad: number;
}

/** Hash of a context key k into the table: ((k * multiplier) mod HASH_MODULUS) mod size. */
export const HASH_MODULUS = 2_147_483_647; // 2^31 - 1 (prime)
/** MINSTD multipliers (primitive roots mod 2^31 - 1), one per cuckoo choice. */
export const HASH_MULTIPLIERS = [48_271, 69_621] as const;

export interface CuckooHash {
  size: number;
  /** Context key per slot, -1 for an empty slot. */
  keys: number[];
  /** Table row per slot (0 for an empty slot). */
  rows: number[];
}

export interface CharNgramModel {
  vocabulary: string[];
  order: number;
  /**
   * Internal start-of-text id (= vocabulary.length). Contexts reaching before an
   * entry's first character are padded with it; no logit column refers to it.
   */
  bos: number;
  /** Context keys are numbers in base radix = vocabulary.length + 1 (see contextKey). */
  radix: number;
  /** Row-major [rows, vocabulary.length] quantised logits; row 0 is the empty context. */
  table: Uint8Array;
  rows: number;
  /** float32 factor turning a stored byte into a logit: -logitStepBits * ln 2. */
  logitScale: number;
  /** Kept contexts per context length 0..order-1. */
  contextsPerLength: number[];
  hash: CuckooHash;
}

/**
 * Light normalisation: a backspace deletes the character before it (the corpus
 * has three overstrikes, e.g. `__\b\bUN` for underlined "UN"), a tab becomes a
 * space. Case, punctuation and newlines are kept.
 */
export function normalizeText(raw: string): string {
  const out: string[] = [];
  for (const ch of raw) {
    if (ch === '\b') out.pop();
    else out.push(ch === '\t' ? ' ' : ch);
  }
  return out.join('');
}

/** Characters occurring at least minCount times, in code point order; index = token id. */
export function buildVocabulary(texts: readonly string[], minCount: number): string[] {
  const counts = new Map<string, number>();
  for (const text of texts) for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  return [...counts]
    .filter(([, n]) => n >= minCount)
    .map(([ch]) => ch)
    .sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
}

/**
 * Token ids of `text`. A character outside the vocabulary becomes its lower-case
 * form if that is in the vocabulary (the corpus's single "X"), otherwise it is
 * dropped. `dropped` counts the characters lost.
 */
export function encodeText(text: string, vocabulary: readonly string[]): { ids: number[]; dropped: number } {
  const index = new Map(vocabulary.map((ch, i) => [ch, i]));
  const ids: number[] = [];
  let dropped = 0;
  for (const ch of text) {
    const id = index.get(ch) ?? index.get(ch.toLowerCase());
    if (id === undefined) dropped++;
    else ids.push(id);
  }
  return { ids, dropped };
}

export interface CharCorpus {
  vocabulary: string[];
  /** Entry indices (into the loaded entries) of the two parts. */
  split: Split;
  /** Token ids per entry. */
  train: number[][];
  test: number[][];
  /** Characters of the corpus outside the vocabulary (dropped). */
  dropped: number;
}

/** Normalise, choose the vocabulary on the whole corpus, hold out whole entries at random. */
export function prepareCorpus(
  rawEntries: readonly string[],
  minCharCount: number,
  testFraction: number,
  seed: number,
): CharCorpus {
  const texts = rawEntries.map(normalizeText);
  const vocabulary = buildVocabulary(texts, minCharCount);
  let dropped = 0;
  const encoded = texts.map((text) => {
    const e = encodeText(text, vocabulary);
    dropped += e.dropped;
    return e.ids;
  });
  const split = randomSplit(encoded.length, testFraction, seed);
  return { vocabulary, split, train: pick(encoded, split.train), test: pick(encoded, split.test), dropped };
}

/**
 * Characters the model is scored on: every character of an entry but the first,
 * which is always given (the prompt) because logits at position t predict t + 1.
 */
export function predictedChars(entries: readonly number[][]): number {
  return entries.reduce((sum, e) => sum + Math.max(e.length - 1, 0), 0);
}

/**
 * Key of the context of length L ending at position `end` (inclusive):
 * radix^L + sum_j token(end - j) * radix^j, token(i) = bos for i < 0. The leading
 * radix^L makes keys of different lengths distinct. The graph computes the same.
 */
export function contextKey(seq: readonly number[], end: number, length: number, radix: number): number {
  const bos = radix - 1;
  let key = radix ** length;
  for (let j = 0, weight = 1; j < length; j++, weight *= radix) key += (end - j >= 0 ? seq[end - j]! : bos) * weight;
  return key;
}

/** Cuckoo-hash slot of key for choice 0 or 1. BigInt keeps the product exact; the graph uses int64. */
export function hashSlot(key: number, choice: 0 | 1, size: number): number {
  return Number((BigInt(key) * BigInt(HASH_MULTIPLIERS[choice]) % BigInt(HASH_MODULUS)) % BigInt(size));
}

/** Count-of-counts n1..n4 → modified Kneser-Ney discounts [0, D1, D2, D3+]. */
function discounts(counts: Iterable<Map<number, number>>): number[] {
  const n = [0, 0, 0, 0, 0];
  for (const successors of counts) for (const c of successors.values()) if (c <= 4) n[c]!++;
  const y = n[1]! / (n[1]! + 2 * n[2]!);
  const d = [0, 1 - (2 * y * n[2]!) / n[1]!, 2 - (3 * y * n[3]!) / n[2]!, 3 - (4 * y * n[4]!) / n[3]!];
  // Tiny count-of-counts (the unigram level) can give estimates outside [0, c]: use Ney's single discount y.
  const fallback = Number.isFinite(y) ? y : 0.5;
  return d.map((v, c) => (c === 0 ? 0 : Number.isFinite(v) && v >= 0 && v <= c ? v : Math.min(fallback, c)));
}

const f32 = Math.fround;

/**
 * Train the interpolated modified Kneser-Ney model on `train` (token ids per entry)
 * and build its exported table and hash.
 */
export function trainCharNgram(
  train: readonly number[][],
  vocabulary: string[],
  opts: CharNgramOptions,
): CharNgramModel {
  const V = vocabulary.length;
  const radix = V + 1;
  const bos = V;
  const N = opts.order;
  if (opts.minContextCount.length !== N) throw new Error(`minContextCount needs ${N} entries`);
  for (let L = 1; L < N; L++) {
    if (opts.minContextCount[L]! < opts.minContextCount[L - 1]!) throw new Error('minContextCount must not decrease');
  }
  // Exactness limits: dedupe keys below (TS numbers) and key * multiplier in the graph (int64).
  const maxKey = 2 * radix ** (N - 1);
  if (maxKey * radix * radix >= Number.MAX_SAFE_INTEGER) throw new Error('order too high for exact context keys');
  if (BigInt(maxKey) * BigInt(Math.max(...HASH_MULTIPLIERS)) >= 2n ** 63n) {
    throw new Error('context keys would overflow int64 in the graph');
  }

  // counts[L]: context key (length L) → next token → Kneser-Ney adjusted count. The
  // highest order uses raw counts; lower orders count distinct left neighbours
  // (continuation counts), except for n-grams starting with bos, which cannot be
  // extended to the left and keep their raw counts.
  const counts = Array.from({ length: N }, () => new Map<number, Map<number, number>>());
  const contextTotals = Array.from({ length: N }, () => new Map<number, number>());
  const seenExtension = Array.from({ length: N }, () => new Set<number>());
  for (const seq of train) {
    for (let t = 1; t < seq.length; t++) {
      const w = seq[t]!;
      for (let L = 0; L < N; L++) {
        const h = contextKey(seq, t - 1, L, radix);
        contextTotals[L]!.set(h, (contextTotals[L]!.get(h) ?? 0) + 1);
        if (L < N - 1 && !(L >= 1 && t - L < 0)) {
          const left = t - 1 - L >= 0 ? seq[t - 1 - L]! : bos;
          const extension = (h * radix + w) * radix + left;
          if (seenExtension[L]!.has(extension)) continue;
          seenExtension[L]!.add(extension);
        }
        let successors = counts[L]!.get(h);
        if (!successors) counts[L]!.set(h, (successors = new Map<number, number>()));
        successors.set(w, (successors.get(w) ?? 0) + 1);
      }
    }
  }
  const D = counts.map((level) => discounts(level.values()));

  /** Interpolated distribution for the context whose length-L key is `key`. */
  const distribution = (key: number, L: number): Float64Array => {
    const tokens = key - radix ** L; // the context's digits, newest lowest
    let p = new Float64Array(V).fill(1 / V);
    for (let l = 0; l <= L; l++) {
      const successors = counts[l]!.get(radix ** l + (tokens % radix ** l));
      if (!successors) continue; // unseen at this length: keep the shorter context's distribution
      const d = D[l]!;
      let total = 0;
      let backoff = 0;
      for (const c of successors.values()) {
        total += c;
        backoff += d[Math.min(c, 3)]!;
      }
      const next = new Float64Array(V);
      for (let v = 0; v < V; v++) next[v] = (backoff / total) * p[v]!;
      for (const [v, c] of successors) next[v]! += Math.max(c - d[Math.min(c, 3)]!, 0) / total;
      p = next;
    }
    return p;
  };

  // Kept contexts, row order: empty context, then by length, then by key.
  const kept: { key: number; length: number }[] = [{ key: 1, length: 0 }];
  const contextsPerLength = [1];
  for (let L = 1; L < N; L++) {
    const keys = [...contextTotals[L]!].filter(([, n]) => n >= opts.minContextCount[L]!).map(([k]) => k);
    keys.sort((a, b) => a - b);
    for (const key of keys) kept.push({ key, length: L });
    contextsPerLength.push(keys.length);
  }

  const table = new Uint8Array(kept.length * V);
  kept.forEach(({ key, length }, row) => {
    const p = distribution(key, length);
    for (let v = 0; v < V; v++) table[row * V + v] = Math.min(255, Math.round(-Math.log2(p[v]!) / opts.logitStepBits));
  });

  return {
    vocabulary,
    order: N,
    bos,
    radix,
    table,
    rows: kept.length,
    logitScale: f32(-opts.logitStepBits * Math.LN2),
    contextsPerLength,
    hash: buildCuckooHash(
      kept.slice(1).map((c, i) => [c.key, i + 1]),
      opts.hashLoad,
    ),
  };
}

/** Two-choice cuckoo hash of [key, row] pairs; grows the table by 5% until every key fits. */
function buildCuckooHash(entries: readonly [number, number][], load: number): CuckooHash {
  const MAX_KICKS = 500;
  let size = Math.ceil(entries.length / load);
  for (;;) {
    const keys = new Array<number>(size).fill(-1);
    const rows = new Array<number>(size).fill(0);
    const fits = entries.every(([key, row]) => {
      let k = key;
      let r = row;
      let slot = hashSlot(k, 0, size);
      for (let kick = 0; kick < MAX_KICKS; kick++) {
        if (keys[slot] === -1) {
          keys[slot] = k;
          rows[slot] = r;
          return true;
        }
        const [k2, r2] = [keys[slot]!, rows[slot]!];
        keys[slot] = k;
        rows[slot] = r;
        k = k2;
        r = r2;
        const first = hashSlot(k, 0, size);
        slot = slot === first ? hashSlot(k, 1, size) : first;
      }
      return false;
    });
    if (fits) return { size, keys, rows };
    size = Math.ceil(size * 1.05);
  }
}

/**
 * Table row the graph uses at position t: the longest kept context ending at t,
 * found by probing both cuckoo slots per context length. Mirrors graphs.ts.
 */
export function contextRow(model: CharNgramModel, seq: readonly number[], t: number): number {
  let row = 0;
  for (let L = 1; L < model.order; L++) {
    const key = contextKey(seq, t, L, model.radix);
    for (const choice of [0, 1] as const) {
      const slot = hashSlot(key, choice, model.hash.size);
      if (model.hash.keys[slot] === key) {
        row = model.hash.rows[slot]!;
        break;
      }
    }
  }
  return row;
}

/** Natural-log next-token probabilities of a row, as the graph's Cast → Mul → LogSoftmax computes them. */
export function rowLogits(model: CharNgramModel, row: number): Float64Array {
  const V = model.vocabulary.length;
  const x = new Float64Array(V);
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    x[v] = f32(model.table[row * V + v]! * model.logitScale);
    if (x[v]! > max) max = x[v]!;
  }
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(x[v]! - max);
  const logZ = max + Math.log(sum);
  for (let v = 0; v < V; v++) x[v]! -= logZ;
  return x;
}

/** Mean bits per predicted character (every character of an entry but its first). */
export function bitsPerChar(model: CharNgramModel, entries: readonly number[][]): number {
  const cache = new Map<number, Float64Array>();
  let nats = 0;
  for (const seq of entries) {
    for (let t = 0; t + 1 < seq.length; t++) {
      const row = contextRow(model, seq, t);
      let logits = cache.get(row);
      if (!logits) cache.set(row, (logits = rowLogits(model, row)));
      nats -= logits[seq[t + 1]!]!;
    }
  }
  return nats / Math.LN2 / predictedChars(entries);
}

/** Baseline: add-one smoothed unigram frequencies of the training characters, scored like bitsPerChar. */
export function unigramBitsPerChar(
  train: readonly number[][],
  test: readonly number[][],
  vocabularySize: number,
): number {
  const counts = new Array<number>(vocabularySize).fill(1);
  for (const seq of train) for (let t = 1; t < seq.length; t++) counts[seq[t]!]!++;
  const total = counts.reduce((a, b) => a + b, 0);
  let bits = 0;
  for (const seq of test) for (let t = 1; t < seq.length; t++) bits -= Math.log2(counts[seq[t]!]! / total);
  return bits / predictedChars(test);
}
