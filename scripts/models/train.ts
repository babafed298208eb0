// Plain-TypeScript training for the shipped models. Every model is
//   standardise (x - mean) / std  →  affine (z · W + b)  →  [softmax]
// which maps 1:1 onto the exported ONNX graph (see graphs.ts).
//
// Determinism: arithmetic is IEEE float64 in a fixed order, randomness comes only
// from the seeded PRNG, and exported parameters are rounded to float32 here, so
// the same seed yields the same bytes on every run.
import { mulberry32, shuffled } from './prng.ts';

/** Parameters of the exported graph, already rounded to float32 values. */
export interface AffineModel {
  inputs: number;
  outputs: number;
  mean: number[];
  std: number[];
  /** Row-major [inputs, outputs]. */
  weights: number[];
  bias: number[];
}

export interface Standardizer {
  mean: number[];
  std: number[];
}

export interface SgdOptions {
  epochs: number;
  /** Rows per update; >= the row count means full-batch gradient descent. */
  batchSize: number;
  learningRate: number;
  momentum: number;
  /** L2 penalty on weights (not bias); keeps separable classes from diverging. */
  l2: number;
  /** Seeds the mini-batch order. */
  seed: number;
}

const f32 = Math.fround;

/**
 * Column mean and population std from the training rows only. A constant column
 * (e.g. an always-blank digits pixel) gets std 1 so the graph never divides by 0.
 * Rounded to float32 up front so training sees exactly what the graph computes.
 */
export function fitStandardizer(x: readonly number[][]): Standardizer {
  const n = x.length;
  const width = x[0]!.length;
  const mean: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < width; j++) {
    let sum = 0;
    for (const row of x) sum += row[j]!;
    const m = sum / n;
    let sq = 0;
    for (const row of x) sq += (row[j]! - m) ** 2;
    const s = Math.sqrt(sq / n);
    mean.push(f32(m));
    std.push(s > 1e-6 ? f32(s) : 1);
  }
  return { mean, std };
}

/** Mirrors the graph's Sub then Div in float32. */
export function standardize(x: readonly number[][], s: Standardizer): number[][] {
  return x.map((row) => row.map((v, j) => f32(f32(f32(v) - s.mean[j]!) / s.std[j]!)));
}

/**
 * Per-row loss gradient w.r.t. the affine output. Overwrites `out` (holding the
 * affine output on entry) with d(loss)/d(output).
 */
type OutputGradient = (out: Float64Array, target: number) => void;

/** Softmax cross-entropy: gradient is softmax(logits) - onehot(target). */
const softmaxCrossEntropy: OutputGradient = (out, target) => {
  softmaxInPlace(out);
  out[target]! -= 1;
};

/** Half squared error on a single output: gradient is prediction - target. */
const squaredError: OutputGradient = (out, target) => {
  out[0]! -= target;
};

function softmaxInPlace(v: Float64Array): void {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] = Math.exp(v[i]! - max);
  for (let i = 0; i < v.length; i++) v[i]! /= sum;
}

/** Mini-batch SGD with classical momentum from zero weights (both losses are convex). */
function sgd(
  z: readonly number[][],
  targets: readonly number[],
  outputs: number,
  gradient: OutputGradient,
  opts: SgdOptions,
): { weights: Float64Array; bias: Float64Array } {
  const n = z.length;
  const width = z[0]!.length;
  const weights = new Float64Array(width * outputs);
  const bias = new Float64Array(outputs);
  const vW = new Float64Array(width * outputs);
  const vB = new Float64Array(outputs);
  const gW = new Float64Array(width * outputs);
  const gB = new Float64Array(outputs);
  const out = new Float64Array(outputs);
  const rng = mulberry32(opts.seed);
  const rows = Array.from({ length: n }, (_, i) => i);

  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = opts.batchSize >= n ? rows : shuffled(rows, rng);
    for (let start = 0; start < n; start += opts.batchSize) {
      const batch = order.slice(start, start + opts.batchSize);
      gW.fill(0);
      gB.fill(0);
      for (const r of batch) {
        const zr = z[r]!;
        out.set(bias);
        for (let j = 0; j < width; j++) {
          const v = zr[j]!;
          if (v === 0) continue;
          const base = j * outputs;
          for (let k = 0; k < outputs; k++) out[k]! += v * weights[base + k]!;
        }
        gradient(out, targets[r]!);
        for (let j = 0; j < width; j++) {
          const v = zr[j]!;
          if (v === 0) continue;
          const base = j * outputs;
          for (let k = 0; k < outputs; k++) gW[base + k]! += v * out[k]!;
        }
        for (let k = 0; k < outputs; k++) gB[k]! += out[k]!;
      }
      const scale = 1 / batch.length;
      for (let i = 0; i < weights.length; i++) {
        vW[i] = opts.momentum * vW[i]! - opts.learningRate * (gW[i]! * scale + opts.l2 * weights[i]!);
        weights[i]! += vW[i]!;
      }
      for (let k = 0; k < outputs; k++) {
        vB[k] = opts.momentum * vB[k]! - opts.learningRate * gB[k]! * scale;
        bias[k]! += vB[k]!;
      }
    }
  }
  return { weights, bias };
}

/** Multinomial logistic regression over `classes` classes on raw features. */
export function trainSoftmaxRegression(
  x: readonly number[][],
  y: readonly number[],
  classes: number,
  opts: SgdOptions,
): AffineModel {
  const s = fitStandardizer(x);
  const { weights, bias } = sgd(standardize(x, s), y, classes, softmaxCrossEntropy, opts);
  return {
    inputs: s.mean.length,
    outputs: classes,
    ...s,
    weights: Array.from(weights, f32),
    bias: Array.from(bias, f32),
  };
}

/**
 * Least-squares linear regression on raw features. The target is standardised
 * for training (well-conditioned steps) and its scale folded back into W and b,
 * so the graph outputs the target in its original units.
 */
export function trainLinearRegression(x: readonly number[][], y: readonly number[], opts: SgdOptions): AffineModel {
  const s = fitStandardizer(x);
  const yMean = y.reduce((a, b) => a + b, 0) / y.length;
  const yStd = Math.sqrt(y.reduce((a, b) => a + (b - yMean) ** 2, 0) / y.length);
  const t = y.map((v) => (v - yMean) / yStd);
  const { weights, bias } = sgd(standardize(x, s), t, 1, squaredError, opts);
  return {
    inputs: s.mean.length,
    outputs: 1,
    ...s,
    weights: Array.from(weights, (w) => f32(w * yStd)),
    bias: [f32(bias[0]! * yStd + yMean)],
  };
}

/** Affine outputs (logits, or the regression value) for raw rows, as the graph computes them. */
export function predictAffine(model: AffineModel, x: readonly number[][]): number[][] {
  return standardize(x, model).map((z) => {
    const out: number[] = [];
    for (let k = 0; k < model.outputs; k++) {
      let acc = 0;
      for (let j = 0; j < model.inputs; j++) acc += z[j]! * model.weights[j * model.outputs + k]!;
      out.push(f32(f32(acc) + model.bias[k]!));
    }
    return out;
  });
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

export function accuracy(predicted: readonly number[], actual: readonly number[]): number {
  let hits = 0;
  for (let i = 0; i < actual.length; i++) if (predicted[i] === actual[i]) hits++;
  return hits / actual.length;
}

/** Coefficient of determination, 1 - SS_res / SS_tot, against the test set's own mean. */
export function rSquared(predicted: readonly number[], actual: readonly number[]): number {
  const mean = actual.reduce((a, b) => a + b, 0) / actual.length;
  let ssRes = 0;
  let ssTot = 0;
  for (let i = 0; i < actual.length; i++) {
    ssRes += (actual[i]! - predicted[i]!) ** 2;
    ssTot += (actual[i]! - mean) ** 2;
  }
  return 1 - ssRes / ssTot;
}
