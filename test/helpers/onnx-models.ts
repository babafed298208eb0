import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attr, DataType, encodeModel, int64Tensor, node, valueInfo, type GraphProto } from '../../scripts/models/onnx-writer.ts';

/** Writes `<repository>/<name>/<version>/model.onnx` (opset 13) and returns its path. */
function writeModel(repository: string, name: string, version: number, graph: Omit<GraphProto, 'name'>): string {
  const bytes = encodeModel({ producerName: 'gateway tests', graph: { name, ...graph } });
  const dir = join(repository, name, String(version));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), bytes);
  return join(dir, 'model.onnx');
}

/**
 * A two-input GENERIC model with no manifest: `sum = a + b` (float32 [batch, 3])
 * and `doubled = n + n` (int64 [batch, 2]).
 */
export function writeAdderModel(repository: string, name = 'adder', version = 1): string {
  return writeModel(repository, name, version, {
    node: [node('Add', ['a', 'b'], ['sum']), node('Add', ['n', 'n'], ['doubled'])],
    initializer: [],
    input: [
      valueInfo('a', DataType.FLOAT, ['batch', 3]),
      valueInfo('b', DataType.FLOAT, ['batch', 3]),
      valueInfo('n', DataType.INT64, ['batch', 2]),
    ],
    output: [valueInfo('sum', DataType.FLOAT, ['batch', 3]), valueInfo('doubled', DataType.INT64, ['batch', 2])],
  });
}

/** Mixes rows: `y = x - mean(x, axis 0)`, x and y float32 [?, 3] with an unnamed first dimension. */
export function writeRowMixerModel(repository: string, name = 'row_mixer', version = 1): string {
  return writeModel(repository, name, version, {
    node: [node('ReduceMean', ['x'], ['mean'], [attr.ints('axes', [0]), attr.int('keepdims', 1)]), node('Sub', ['x', 'mean'], ['y'])],
    initializer: [],
    input: [valueInfo('x', DataType.FLOAT, [null, 3])],
    output: [valueInfo('y', DataType.FLOAT, [null, 3])],
  });
}

/**
 * A recurrent-style state whose batch axis is second: `y = x + sum(state, axis 0)`,
 * x float32 [batch, 4], state float32 [layers, batch, 4], y [batch, 4].
 */
export function writeLayerStateModel(repository: string, name = 'layer_state', version = 1): string {
  return writeModel(repository, name, version, {
    node: [node('ReduceSum', ['state', 'axes'], ['summed'], [attr.int('keepdims', 0)]), node('Add', ['x', 'summed'], ['y'])],
    initializer: [int64Tensor('axes', [1], [0])],
    input: [valueInfo('x', DataType.FLOAT, ['batch', 4]), valueInfo('state', DataType.FLOAT, ['layers', 'batch', 4])],
    output: [valueInfo('y', DataType.FLOAT, ['batch', 4])],
  });
}

/**
 * `y = x * scale`: x float32 [batch, 2], scale a float32 scalar, y [batch, 2]. The scale
 * is read through a full ReduceMax (a no-op on a scalar), so scalars stacked into a
 * vector would be folded into one value instead of failing.
 */
export function writeScaleModel(repository: string, name = 'scale', version = 1): string {
  return writeModel(repository, name, version, {
    node: [node('ReduceMax', ['scale'], ['factor'], [attr.int('keepdims', 0)]), node('Mul', ['x', 'factor'], ['y'])],
    initializer: [],
    input: [valueInfo('x', DataType.FLOAT, ['batch', 2]), valueInfo('scale', DataType.FLOAT, [])],
    output: [valueInfo('y', DataType.FLOAT, ['batch', 2])],
  });
}

/**
 * A reflect pad of 2 on each side of the time axis: x float32 [batch, time] ->
 * y [batch, padded]. ONNX Runtime rejects time < 3, so zeros of length 1 fail.
 */
export function writeReflectPadModel(repository: string, name = 'reflect_pad', version = 1): string {
  return writeModel(repository, name, version, {
    node: [node('Pad', ['x', 'pads'], ['y'], [attr.string('mode', 'reflect')])],
    initializer: [int64Tensor('pads', [4], [0, 2, 0, 2])],
    input: [valueInfo('x', DataType.FLOAT, ['batch', 'time'])],
    output: [valueInfo('y', DataType.FLOAT, ['batch', 'padded'])],
  });
}
