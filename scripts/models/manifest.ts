// models/<name>/model.json: the server's description of a model. Field order
// below is the order written to disk; keep it stable so rebuilds are byte-identical.

export interface FeatureRange {
  name: string;
  /** Inclusive bounds the server accepts for this input column. */
  min: number;
  max: number;
  /** Histogram of the training split (drift monitoring); see reference.ts. */
  reference: FeatureReference;
}

/** Same shape as src/monitoring/psi.ts ReferenceHistogram, as written to disk. */
export interface FeatureReference {
  /** Smallest training value, the cut points, largest training value. */
  edges: number[];
  /** Share of training values per bin (4 decimals); bin i is [edges[i], edges[i+1]), the last closed. */
  proportions: number[];
}

export interface ClassifierMetrics {
  heldOutAccuracy: number;
  trainRows: number;
  testRows: number;
  /** Seed of the train/test split and mini-batch order; verify.ts re-derives the split from it. */
  seed: number;
}

export interface RegressorMetrics {
  heldOutR2: number;
  trainRows: number;
  testRows: number;
  seed: number;
}

/** Figures of a character-level generator; bits are per predicted character (all but an entry's first). */
export interface GeneratorMetrics {
  /** Mean -log2 p(next char) over the held-out entries. */
  heldOutBitsPerChar: number;
  /** The same for add-one smoothed unigram frequencies of the training characters (baseline). */
  unigramBitsPerChar: number;
  /** Characters predicted in training / scored in the held-out entries. */
  trainChars: number;
  testChars: number;
  trainEntries: number;
  testEntries: number;
  /** Seed of the entry-level train/test split; verify.ts re-derives the split from it. */
  seed: number;
}

export interface GeneratorManifest {
  description: string;
  kind: 'GENERATOR';
  /** vocabulary[i] is the text of token id i; the logits' last dimension is vocabulary.length. */
  vocabulary: string[];
  output: 'logits';
  defaultVersion: number;
  metrics: GeneratorMetrics;
}

/** Manifests of the tabular models (input `features`). */
export type TabularManifest =
  | {
      description: string;
      kind: 'CLASSIFIER';
      /** Class names in the order of the `probabilities` columns. */
      labels: string[];
      features: FeatureRange[];
      output: 'probabilities';
      defaultVersion: number;
      batching: Batching;
      metrics: ClassifierMetrics;
    }
  | {
      description: string;
      kind: 'REGRESSOR';
      features: FeatureRange[];
      output: 'value';
      defaultVersion: number;
      batching: Batching;
      metrics: RegressorMetrics;
    };

export type ModelManifest = TabularManifest | GeneratorManifest;

export interface Batching {
  maxBatchSize: number;
  maxQueueDelayMs: number;
}

export const DEFAULT_BATCHING: Batching = { maxBatchSize: 64, maxQueueDelayMs: 0 };

/** Metrics are stored to 4 decimals. */
export function round4(v: number): number {
  return Math.round(v * 10_000) / 10_000;
}

/** Pretty JSON, 2-space indent, trailing newline. */
export function manifestJson(m: ModelManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * Smallest "2 significant digits" number >= v: 15.8 → 16, 8508 → 8600, 0.19488 → 0.2.
 * Divides by a power of ten for small magnitudes so results print without float noise.
 */
export function niceCeil(v: number): number {
  if (v <= 0) return 0;
  const exponent = Math.floor(Math.log10(v)) - 1;
  const scaled = exponent >= 0 ? v / 10 ** exponent : v * 10 ** -exponent;
  const k = Math.ceil(scaled - 1e-9);
  return exponent >= 0 ? k * 10 ** exponent : k / 10 ** -exponent;
}

/** A feature's name and allowed range, before its reference is added. */
export type FeatureBounds = Omit<FeatureRange, 'reference'>;

/**
 * Default allowed range for a physical, non-negative measurement: 0 up to twice
 * the largest value in the whole data set, rounded up to a readable number.
 */
export function generousRanges(featureNames: readonly string[], x: readonly number[][]): FeatureBounds[] {
  return featureNames.map((name, j) => {
    let observedMax = -Infinity;
    for (const row of x) observedMax = Math.max(observedMax, row[j]!);
    return { name, min: 0, max: niceCeil(2 * observedMax) };
  });
}
