// ONNX graphs for the shipped models. Contract the server relies on:
//   input  `features`      float32 [batch, F]   raw measurements, F fixed
//   output `probabilities` float32 [batch, C]   classifiers: Softmax(axis=1) of the logits
//   output `value`         float32 [batch, 1]   regressors
// Standardisation is inside the graph (Sub mean, Div std), so clients never
// need the training statistics.
import type { AffineModel } from './train.ts';
import { DataType, attr, encodeModel, floatTensor, node, valueInfo, type NodeProto } from './onnx-writer.ts';

export const PRODUCER_NAME = 'onnx-graphql-gateway models:build';
export const INPUT_NAME = 'features';
export const CLASSIFIER_OUTPUT = 'probabilities';
export const REGRESSOR_OUTPUT = 'value';
const BATCH = 'batch';

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
