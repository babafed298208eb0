// ONNX graphs for the shipped models. Contract the server relies on:
//   input  `features`      float32 [batch, F]   raw measurements, F fixed
//   output `probabilities` float32 [batch, C]   classifiers: Softmax(axis=1) of the logits
//   output `value`         float32 [batch, 1]   regressors
// Standardisation is inside the graph (Sub mean, Div std), so clients never
// need the training statistics.
// Generators (Hugging Face causal-LM style, see charNgramOnnx):
//   input  `input_ids`      int64 [batch, sequence]   token ids (index into the manifest's vocabulary)
//   input  `attention_mask` int64 [batch, sequence]   1 = real token, 0 = padding
//   output `logits`         float32 [batch, sequence, V]  position t scores token t + 1
import type { CharNgramModel } from './charlm.ts';
import { HASH_MODULUS, HASH_MULTIPLIERS } from './charlm.ts';
import type { AffineModel } from './train.ts';
import {
  DataType,
  attr,
  encodeModel,
  floatTensor,
  int32Tensor,
  int64Tensor,
  node,
  uint8Tensor,
  valueInfo,
  type NodeProto,
  type TensorProto,
} from './onnx-writer.ts';

export const PRODUCER_NAME = 'onnx-graphql-gateway models:build';
export const INPUT_NAME = 'features';
export const CLASSIFIER_OUTPUT = 'probabilities';
export const REGRESSOR_OUTPUT = 'value';
export const GENERATOR_INPUT_IDS = 'input_ids';
export const GENERATOR_ATTENTION_MASK = 'attention_mask';
export const GENERATOR_OUTPUT = 'logits';
const BATCH = 'batch';
const SEQUENCE = 'sequence';

interface GraphText {
  /** Graph name, e.g. "iris". */
  name: string;
  docString: string;
}

/** features → (x - mean) / std → · W + b, ending in a tensor called `affineOut`. */
function affineNodes(affineOut: string): NodeProto[] {
  return [
    node('Sub', [INPUT_NAME, 'feature_mean'], ['centered']),
    node('Div', ['centered', 'feature_std'], ['standardized']),
    node('MatMul', ['standardized', 'weights'], ['projected']),
    node('Add', ['projected', 'bias'], [affineOut]),
  ];
}

function affineInitializers(m: AffineModel) {
  return [
    floatTensor('feature_mean', [m.inputs], m.mean),
    floatTensor('feature_std', [m.inputs], m.std),
    floatTensor('weights', [m.inputs, m.outputs], m.weights),
    floatTensor('bias', [m.outputs], m.bias),
  ];
}

export function classifierOnnx(m: AffineModel, text: GraphText, labels: string[]): Uint8Array {
  if (labels.length !== m.outputs) throw new Error(`${text.name}: ${labels.length} labels for ${m.outputs} outputs`);
  return encodeModel({
    producerName: PRODUCER_NAME,
    graph: {
      name: text.name,
      doc_string: text.docString,
      node: [...affineNodes('logits'), node('Softmax', ['logits'], [CLASSIFIER_OUTPUT], [attr.int('axis', 1)])],
      initializer: affineInitializers(m),
      input: [valueInfo(INPUT_NAME, DataType.FLOAT, [BATCH, m.inputs], 'raw feature values, one row per example')],
      output: [
        valueInfo(CLASSIFIER_OUTPUT, DataType.FLOAT, [BATCH, m.outputs], `class probabilities in label order: ${labels.join(', ')}`),
      ],
    },
    metadata: { labels: JSON.stringify(labels) },
  });
}

export function regressorOnnx(m: AffineModel, text: GraphText): Uint8Array {
  if (m.outputs !== 1) throw new Error(`${text.name}: regressor must have exactly one output`);
  return encodeModel({
    producerName: PRODUCER_NAME,
    graph: {
      name: text.name,
      doc_string: text.docString,
      node: affineNodes(REGRESSOR_OUTPUT),
      initializer: affineInitializers(m),
      input: [valueInfo(INPUT_NAME, DataType.FLOAT, [BATCH, m.inputs], 'raw feature values, one row per example')],
      output: [valueInfo(REGRESSOR_OUTPUT, DataType.FLOAT, [BATCH, 1], 'predicted target value')],
    },
  });
}

/**
 * Character n-gram generator (model from charlm.ts). Per position t:
 *   ids      = Where(attention_mask == 0, bos, input_ids)       padding acts as start of text
 *   lag_j    = token at t - j, j < order - 1 (bos before the sequence: Pad on the left)
 *   key_L    = radix^L + sum_{j<L} lag_j * radix^j            for each context length L
 *   row_L    = row of key_L if it is in the cuckoo hash (two probes), else row_{L-1}; row_0 = 0
 *   logits   = LogSoftmax(Cast(table[row_{order-1}]) * logitScale)
 * Position t only reads tokens at or before t, so the graph is causal, and a
 * length-1 input is valid. The logits are normalised log-probabilities.
 */
export function charNgramOnnx(m: CharNgramModel, text: GraphText): Uint8Array {
  const V = m.vocabulary.length;
  const pad = m.order - 1;
  const nodes: NodeProto[] = [
    node('Equal', [GENERATOR_ATTENTION_MASK, 'zero_i64'], ['is_padding']),
    node('Where', ['is_padding', 'bos_id', GENERATOR_INPUT_IDS], ['ids']),
    node('Pad', ['ids', 'left_pads', 'bos_id'], ['padded_ids'], [attr.string('mode', 'constant')]),
  ];
  const initializers: TensorProto[] = [
    int64Tensor('zero_i64', [], [0]),
    int64Tensor('bos_id', [], [m.bos]),
    int64Tensor('left_pads', [4], [0, pad, 0, 0]),
    int64Tensor('slice_axes', [1], [1]),
    int64Tensor('hash_modulus', [], [HASH_MODULUS]),
    int64Tensor('hash_multiplier_0', [], [HASH_MULTIPLIERS[0]]),
    int64Tensor('hash_multiplier_1', [], [HASH_MULTIPLIERS[1]]),
    int64Tensor('hash_size', [], [m.hash.size]),
    int64Tensor('hash_keys', [m.hash.size], m.hash.keys),
    int32Tensor('hash_rows', [m.hash.size], m.hash.rows),
    int32Tensor('root_row', [], [0]),
    uint8Tensor('logit_table', [m.rows, V], m.table),
    floatTensor('logit_scale', [], [m.logitScale]),
  ];
  // lag_j = padded_ids[:, pad - j : length - j] (token j steps back); lag_0 is ids itself.
  const lag = (j: number) => (j === 0 ? 'ids' : `lag_${j}`);
  const digits = (L: number) => (L === 1 ? lag(0) : `digits_${L}`);
  for (let j = 1; j < m.order - 1; j++) {
    initializers.push(int64Tensor(`lag_${j}_start`, [1], [pad - j]), int64Tensor(`lag_${j}_end`, [1], [-j]));
    nodes.push(node('Slice', ['padded_ids', `lag_${j}_start`, `lag_${j}_end`, 'slice_axes'], [lag(j)]));
  }
  let row = 'root_row';
  for (let L = 1; L < m.order; L++) {
    // digits_L = sum_{j<L} lag_j * radix^j, key_L = digits_L + radix^L
    if (L > 1) {
      initializers.push(int64Tensor(`radix_pow_${L - 1}`, [], [m.radix ** (L - 1)]));
      nodes.push(
        node('Mul', [lag(L - 1), `radix_pow_${L - 1}`], [`weighted_lag_${L - 1}`]),
        node('Add', [digits(L - 1), `weighted_lag_${L - 1}`], [digits(L)]),
      );
    }
    initializers.push(int64Tensor(`length_marker_${L}`, [], [m.radix ** L]));
    nodes.push(node('Add', [digits(L), `length_marker_${L}`], [`key_${L}`]));
    for (const c of [0, 1] as const) {
      const p = `probe_${L}_${c}`;
      nodes.push(
        node('Mul', [`key_${L}`, `hash_multiplier_${c}`], [`${p}_product`]),
        node('Mod', [`${p}_product`, 'hash_modulus'], [`${p}_hash`], [attr.int('fmod', 0)]),
        node('Mod', [`${p}_hash`, 'hash_size'], [`${p}_slot`], [attr.int('fmod', 0)]),
        node('Gather', ['hash_keys', `${p}_slot`], [`${p}_key`], [attr.int('axis', 0)]),
        node('Equal', [`${p}_key`, `key_${L}`], [`${p}_hit`]),
        node('Gather', ['hash_rows', `${p}_slot`], [`${p}_row`], [attr.int('axis', 0)]),
      );
    }
    nodes.push(
      node('Where', [`probe_${L}_1_hit`, `probe_${L}_1_row`, row], [`fallback_row_${L}`]),
      node('Where', [`probe_${L}_0_hit`, `probe_${L}_0_row`, `fallback_row_${L}`], [`row_${L}`]),
    );
    row = `row_${L}`;
  }
  nodes.push(
    node('Gather', ['logit_table', row], ['quantised_logits'], [attr.int('axis', 0)]),
    node('Cast', ['quantised_logits'], ['unscaled_logits'], [attr.int('to', DataType.FLOAT)]),
    node('Mul', ['unscaled_logits', 'logit_scale'], ['scaled_logits']),
    node('LogSoftmax', ['scaled_logits'], [GENERATOR_OUTPUT], [attr.int('axis', -1)]),
  );
  return encodeModel({
    producerName: PRODUCER_NAME,
    graph: {
      name: text.name,
      doc_string: text.docString,
      node: nodes,
      initializer: initializers,
      input: [
        valueInfo(GENERATOR_INPUT_IDS, DataType.INT64, [BATCH, SEQUENCE], 'token ids: indices into the vocabulary'),
        valueInfo(
          GENERATOR_ATTENTION_MASK,
          DataType.INT64,
          [BATCH, SEQUENCE],
          '1 for real tokens, 0 for padding (a padded position is read as start of text)',
        ),
      ],
      output: [
        valueInfo(
          GENERATOR_OUTPUT,
          DataType.FLOAT,
          [BATCH, SEQUENCE, V],
          'next-token log-probabilities: position t scores token t + 1 given tokens 0..t',
        ),
      ],
    },
    metadata: { vocabulary: JSON.stringify(m.vocabulary), order: String(m.order) },
  });
}
