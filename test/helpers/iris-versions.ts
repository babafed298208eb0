import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifierOnnx, CLASSIFIER_OUTPUT, INPUT_NAME } from '../../scripts/models/graphs.ts';
import { attr, DataType, encodeModel, floatTensor, int64Tensor, node, valueInfo } from '../../scripts/models/onnx-writer.ts';

const IRIS = 'models/iris';
const LABELS = ['setosa', 'versicolor', 'virginica'];

/**
 * Versions of an iris-shaped classifier (`features` float32 [batch, 4] → `probabilities`
 * float32 [batch, 3]) for lifecycle tests, written as `<repository>/<name>/<version>/model.onnx`:
 * - `same`: the shipped iris model, byte for byte (a replay agrees fully);
 * - `constant`: always answers `virginica` with probability ≈ 1 (agrees on about a third of iris);
 * - `failing`: loads, but every run fails (its graph reshapes 4 numbers per row into rows of 3);
 * - `slow`: answers (always the same class), after eight 1,024 × 1,024 matrix products per row: tens of times slower than iris.
 */
export type IrisVariant = 'same' | 'constant' | 'failing' | 'slow';

export function writeIrisVersion(repository: string, version: number, variant: IrisVariant, name = 'iris'): string {
  const dir = join(repository, name, String(version));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'model.onnx');
  if (variant === 'same') copyFileSync(join(IRIS, '1', 'model.onnx'), file);
  else writeFileSync(file, variant === 'constant' ? constantClassifier(name) : variant === 'slow' ? slowClassifier(name) : failingClassifier(name));
  return file;
}

/** The shipped iris model.json without `defaultVersion`, so the newest READY version serves (Triton's "latest"). */
export function writeIrisManifest(repository: string, name = 'iris', extra: Record<string, unknown> = {}): void {
  const manifest = JSON.parse(readFileSync(join(IRIS, 'model.json'), 'utf8')) as Record<string, unknown>;
  delete manifest['defaultVersion'];
  mkdirSync(join(repository, name), { recursive: true });
  writeFileSync(join(repository, name, 'model.json'), JSON.stringify({ ...manifest, ...extra }, null, 2));
}

function constantClassifier(name: string): Uint8Array {
  return classifierOnnx(
    { inputs: 4, outputs: 3, mean: [0, 0, 0, 0], std: [1, 1, 1, 1], weights: new Array(12).fill(0), bias: [0, 0, 20] },
    { name, docString: 'always virginica (lifecycle tests)' },
    LABELS,
  );
}

function failingClassifier(name: string): Uint8Array {
  return encodeModel({
    producerName: 'gateway tests',
    graph: {
      name,
      node: [node('Reshape', [INPUT_NAME, 'rows_of_3'], [CLASSIFIER_OUTPUT])],
      initializer: [int64Tensor('rows_of_3', [2], [-1, 3])],
      input: [valueInfo(INPUT_NAME, DataType.FLOAT, ['batch', 4])],
      output: [valueInfo(CLASSIFIER_OUTPUT, DataType.FLOAT, ['batch', 3])],
    },
  });
}

function slowClassifier(name: string): Uint8Array {
  const n = 1024;
  const hidden = Array.from({ length: 8 }, (_, i) => node('MatMul', [i === 0 ? 'wide' : `h${i - 1}`, 'square'], [`h${i}`]));
  return encodeModel({
    producerName: 'gateway tests',
    graph: {
      name,
      node: [node('MatMul', [INPUT_NAME, 'widen'], ['wide']), ...hidden, node('MatMul', ['h7', 'narrow'], ['scores']), node('Softmax', ['scores'], [CLASSIFIER_OUTPUT], [attr.int('axis', -1)])],
      initializer: [floatTensor('widen', [4, n], new Float32Array(4 * n).fill(0.25)), floatTensor('square', [n, n], new Float32Array(n * n).fill(1 / n)), floatTensor('narrow', [n, 3], new Float32Array(n * 3).fill(0.001))],
      input: [valueInfo(INPUT_NAME, DataType.FLOAT, ['batch', 4])],
      output: [valueInfo(CLASSIFIER_OUTPUT, DataType.FLOAT, ['batch', 3])],
    },
  });
}
