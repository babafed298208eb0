import type { GptWeights } from './gpt-model.ts';

/** x [rows, inner] · w [inner, cols] (row-major), in float64. */
function matmul(x: Float64Array, w: Float32Array, rows: number, inner: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < inner; k++) {
      const a = x[r * inner + k]!;
      for (let c = 0; c < cols; c++) out[r * cols + c]! += a * w[k * cols + c]!;
    }
  }
  return out;
}

/**
 * The GPT of gpt-model.ts written out by hand: logits [ids.length, vocab] for the whole
 * context at once (positions 0..n-1, no padding, no cache). It shares nothing with the
 * ONNX graph but the weights, so agreement means the graph computes what it claims.
 */
export function referenceLogits(w: GptWeights, ids: readonly number[]): Float64Array {
  const { model: M, heads: H, headDim: D, hidden } = w;
  const n = ids.length;
  let x = new Float64Array(n * M);
  ids.forEach((id, t) => {
    for (let c = 0; c < M; c++) x[t * M + c] = w.wte[id * M + c]! + w.wpe[t * M + c]!;
  });
  for (const layer of w.layers) {
    const q = matmul(x, layer.wq, n, M, M);
    const k = matmul(x, layer.wk, n, M, M);
    const v = matmul(x, layer.wv, n, M, M);
    const context = new Float64Array(n * M);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < n; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[i * M + h * D + d]! * k[j * M + h * D + d]!;
          scores.push(s / Math.sqrt(D));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          for (let d = 0; d < D; d++) context[i * M + h * D + d]! += (e[j]! / sum) * v[j * M + h * D + d]!;
        }
      }
    }
    const attention = matmul(context, layer.wo, n, M, M);
    x = x.map((value, i) => value + attention[i]!);
    const pre = matmul(x, layer.w1, n, M, hidden).map((value, i) => Math.max(0, value + layer.b1[i % hidden]!));
    const mlp = matmul(pre, layer.w2, n, hidden, M);
    x = x.map((value, i) => value + mlp[i]! + layer.b2[i % M]!);
  }
  return matmul(x, w.lm, n, M, w.vocab);
}
