import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataType, attr, encodeModel, floatTensor, int64Tensor, node, valueInfo, type AttributeProto, type Dim, type NodeProto, type TensorProto } from '../../scripts/models/onnx-writer.ts';
import { mulberry32 } from '../../scripts/models/prng.ts';

/**
 * A small GPT exported the way Hugging Face Optimum exports a "decoder with past":
 *   in  input_ids       int64 [batch, sequence]
 *       attention_mask  int64 [batch, past_sequence + sequence]
 *       position_ids    int64 [batch, sequence]
 *       past_key_values.{l}.key / .value  float [batch, heads, past_sequence, head_dim]
 *   out logits          float [batch, sequence, vocab]
 *       present.{l}.key / .value          float [batch, heads, past_sequence + sequence, head_dim]
 * Token + position embeddings, `layers` blocks of multi-head causal self-attention (query i, at
 * absolute position past + i, sees keys 0..past + i and only where attention_mask is 1) and a
 * ReLU MLP, both residual, then an LM head. No layer norm. Random weights from a seeded PRNG.
 */
export interface GptOptions {
  /** Token count of the graph (the logits' width). */
  vocab: number;
  layers?: number;
  heads?: number;
  headDim?: number;
  /** Rows of the position table: the longest context. */
  positions?: number;
  seed?: number;
  /** Declare the cache's heads dimension symbolic (a model the gateway must refuse). */
  dynamicHeads?: boolean;
  /** Declare the logits' last dimension symbolic (its width is then known only by running). */
  dynamicVocab?: boolean;
}

export interface GptLayer {
  wq: Float32Array; wk: Float32Array; wv: Float32Array; wo: Float32Array;
  w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: Float32Array;
}

export interface GptWeights {
  vocab: number; heads: number; headDim: number; model: number; hidden: number; positions: number;
  wte: Float32Array; wpe: Float32Array; layers: GptLayer[]; lm: Float32Array;
}

export function gptWeights(options: GptOptions): GptWeights {
  const { vocab, layers = 2, heads = 2, headDim = 4, positions = 512, seed = 1 } = options;
  const model = heads * headDim;
  const hidden = 2 * model;
  const random = mulberry32(seed);
  const uniform = (count: number, scale: number) => Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
  const fanIn = (n: number) => Math.sqrt(3 / n);
  return {
    vocab, heads, headDim, model, hidden, positions,
    wte: uniform(vocab * model, 1),
    wpe: uniform(positions * model, 0.5),
    layers: Array.from({ length: layers }, () => ({
      wq: uniform(model * model, fanIn(model)),
      wk: uniform(model * model, fanIn(model)),
      wv: uniform(model * model, fanIn(model)),
      wo: uniform(model * model, fanIn(model)),
      w1: uniform(model * hidden, fanIn(model)),
      b1: uniform(hidden, 0.1),
      w2: uniform(hidden * model, fanIn(hidden)),
      b2: uniform(model, 0.1),
    })),
    lm: uniform(model * vocab, 2 * fanIn(model)),
  };
}

export function gptGraph(options: GptOptions): Uint8Array {
  const w = gptWeights(options);
  const { heads: H, headDim: D, model: M, hidden } = w;
  const nodes: NodeProto[] = [];
  const init: TensorProto[] = [
    floatTensor('wte', [w.vocab, M], w.wte),
    floatTensor('wpe', [w.positions, M], w.wpe),
    floatTensor('lm_head', [M, w.vocab], w.lm),
    int64Tensor('index_1', [], [1]),
    int64Tensor('zero', [], [0]),
    int64Tensor('one', [], [1]),
    int64Tensor('axes_0', [1], [0]),
    int64Tensor('axes_1', [1], [1]),
    int64Tensor('axes_1_2', [2], [1, 2]),
    int64Tensor('split_heads', [4], [0, 0, H, D]),
    int64Tensor('merge_heads', [3], [0, 0, M]),
    floatTensor('score_scale', [], [1 / Math.sqrt(D)]),
    floatTensor('masked_score', [], [-1e9]),
  ];
  const n = (op: string, inputs: string[], output: string, attributes: AttributeProto[] = []) => {
    nodes.push(node(op, inputs, [output], attributes));
    return output;
  };

  // allowed [batch, 1, sequence, total]: key j <= past + i, and attention_mask[j] = 1.
  const total = n('Gather', [n('Shape', ['attention_mask'], 'mask_shape'), 'index_1'], 'total', [attr.int('axis', 0)]);
  const sequence = n('Gather', [n('Shape', ['input_ids'], 'ids_shape'), 'index_1'], 'sequence', [attr.int('axis', 0)]);
  const past = n('Sub', [total, sequence], 'past_length');
  const queryPositions = n('Unsqueeze', [n('Range', [past, total, 'one'], 'query_range'), 'axes_1'], 'query_positions');
  const keyPositions = n('Unsqueeze', [n('Range', ['zero', total, 'one'], 'key_range'), 'axes_0'], 'key_positions');
  const causal = n('LessOrEqual', [keyPositions, queryPositions], 'causal');
  const padding = n('Unsqueeze', [n('Cast', ['attention_mask'], 'mask_bool', [attr.int('to', DataType.BOOL)]), 'axes_1_2'], 'mask_4d');
  const allowed = n('And', [causal, padding], 'allowed');

  let x = n('Add', [n('Gather', ['wte', 'input_ids'], 'tokens'), n('Gather', ['wpe', 'position_ids'], 'positions')], 'h_0');
  w.layers.forEach((layer, l) => {
    const p = `l${l}_`;
    for (const name of ['wq', 'wk', 'wv', 'wo'] as const) init.push(floatTensor(p + name, [M, M], layer[name]));
    init.push(floatTensor(`${p}w1`, [M, hidden], layer.w1), floatTensor(`${p}b1`, [hidden], layer.b1));
    init.push(floatTensor(`${p}w2`, [hidden, M], layer.w2), floatTensor(`${p}b2`, [M], layer.b2));
    // [batch, seq, M] -> [batch, heads, seq, head_dim]
    const project = (name: 'wq' | 'wk' | 'wv') =>
      n('Transpose', [n('Reshape', [n('MatMul', [x, p + name], `${p}${name}_out`), 'split_heads'], `${p}${name}_split`)], `${p}${name}_heads`, [
        attr.ints('perm', [0, 2, 1, 3]),
      ]);
    const q = project('wq');
    const k = n('Concat', [`past_key_values.${l}.key`, project('wk')], `present.${l}.key`, [attr.int('axis', 2)]);
    const v = n('Concat', [`past_key_values.${l}.value`, project('wv')], `present.${l}.value`, [attr.int('axis', 2)]);
    const kT = n('Transpose', [k], `${p}keys_t`, [attr.ints('perm', [0, 1, 3, 2])]);
    const scores = n('Mul', [n('MatMul', [q, kT], `${p}raw_scores`), 'score_scale'], `${p}scores`);
    const weights = n('Softmax', [n('Where', [allowed, scores, 'masked_score'], `${p}masked`)], `${p}weights`, [attr.int('axis', -1)]);
    const merged = n('Reshape', [n('Transpose', [n('MatMul', [weights, v], `${p}context`)], `${p}context_t`, [attr.ints('perm', [0, 2, 1, 3])]), 'merge_heads'], `${p}merged`);
    x = n('Add', [x, n('MatMul', [merged, `${p}wo`], `${p}attention`)], `${p}after_attention`);
    const hiddenOut = n('Relu', [n('Add', [n('MatMul', [x, `${p}w1`], `${p}mlp_in`), `${p}b1`], `${p}mlp_pre`)], `${p}mlp_hidden`);
    x = n('Add', [x, n('Add', [n('MatMul', [hiddenOut, `${p}w2`], `${p}mlp_out`), `${p}b2`], `${p}mlp`)], `h_${l + 1}`);
  });
  if (options.dynamicVocab) {
    // [batch, sequence, -1]: shape inference cannot see the width through this Reshape.
    const lm = n('MatMul', [x, 'lm_head'], 'lm_out');
    const leading = n('Slice', [n('Shape', [lm], 'lm_shape'), 'slice_start', 'slice_end'], 'lm_leading');
    n('Reshape', [lm, n('Concat', [leading, 'minus_one'], 'logits_shape', [attr.int('axis', 0)])], 'logits');
    init.push(int64Tensor('slice_start', [1], [0]), int64Tensor('slice_end', [1], [2]), int64Tensor('minus_one', [1], [-1]));
  } else n('MatMul', [x, 'lm_head'], 'logits');

  const headsDim: Dim = options.dynamicHeads ? 'heads' : H;
  const cache = (prefix: string, length: string) =>
    w.layers.flatMap((_, l) => ['key', 'value'].map((kind) => valueInfo(`${prefix}.${l}.${kind}`, DataType.FLOAT, ['batch', headsDim, length, D])));
  return encodeModel({
    producerName: 'gateway tests',
    graph: {
      name: 'gpt',
      node: nodes,
      initializer: init,
      input: [
        valueInfo('input_ids', DataType.INT64, ['batch', 'sequence']),
        valueInfo('attention_mask', DataType.INT64, ['batch', 'total_sequence']),
        valueInfo('position_ids', DataType.INT64, ['batch', 'sequence']),
        ...cache('past_key_values', 'past_sequence'),
      ],
      output: [valueInfo('logits', DataType.FLOAT, ['batch', 'sequence', options.dynamicVocab ? 'vocab' : w.vocab]), ...cache('present', 'total_sequence')],
    },
  });
}

/** Characters for a vocabulary of `size` tokens (size <= 40). */
export function characters(size: number): string[] {
  return [...' abcdefghijklmnopqrstuvwxyz.,!?0123456789'].slice(0, size);
}

/**
 * Writes `<repository>/<name>/1/model.onnx` and a GENERATOR model.json whose vocabulary has
 * `manifestVocab` tokens (default: the graph's width). Returns the model file's path.
 */
export function writeGptModel(repository: string, name: string, options: GptOptions, manifestVocab = options.vocab): string {
  const dir = join(repository, name, '1');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), gptGraph(options));
  writeFileSync(join(repository, name, 'model.json'), JSON.stringify({ kind: 'GENERATOR', vocabulary: characters(manifestVocab) }, null, 2));
  return join(dir, 'model.onnx');
}
