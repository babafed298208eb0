import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataType, encodeModel, node, valueInfo } from '../../scripts/models/onnx-writer.ts';

/**
 * A two-input GENERIC model with no manifest: `sum = a + b` (float32 [batch, 3])
 * and `doubled = n + n` (int64 [batch, 2]).
 */
export function writeAdderModel(repository: string, name = 'adder', version = 1): string {
  const bytes = encodeModel({
    producerName: 'gateway tests',
    graph: {
      name,
      node: [node('Add', ['a', 'b'], ['sum']), node('Add', ['n', 'n'], ['doubled'])],
      initializer: [],
      input: [
        valueInfo('a', DataType.FLOAT, ['batch', 3]),
        valueInfo('b', DataType.FLOAT, ['batch', 3]),
        valueInfo('n', DataType.INT64, ['batch', 2]),
      ],
      output: [valueInfo('sum', DataType.FLOAT, ['batch', 3]), valueInfo('doubled', DataType.INT64, ['batch', 2])],
    },
  });
  const dir = join(repository, name, String(version));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), bytes);
  return join(dir, 'model.onnx');
}
