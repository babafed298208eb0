import { describe, expect, it } from 'vitest';
import { decideBatching } from '../src/inference/batching-policy.ts';
import type { TensorSpec } from '../src/inference/types.ts';

/** A spec as specOf builds it: a number is fixed, a string named, null dynamic and unnamed. */
const spec = (name: string, dims: Array<number | string | null>): TensorSpec => ({
  name,
  datatype: 'FP32',
  shape: dims.map((d) => (typeof d === 'number' ? d : -1)),
  dimNames: dims.map((d) => (typeof d === 'string' ? d : null)),
});
const model = (inputs: TensorSpec[], outputs: TensorSpec[]) => ({ inputs, outputs });
const named = model([spec('a', ['batch', 3]), spec('n', ['batch', 2])], [spec('sum', ['batch', 3])]);
const unnamed = model([spec('x', [null, 3])], [spec('y', [null, 3])]);

describe('decideBatching', () => {
  it('without model.json batching: on when every input and output has the same symbolic first dimension', () => {
    expect(decideBatching(named, undefined, true)).toEqual({
      enabled: true,
      reason: 'every input and output has first dimension `batch`',
      maxBatchSize: 64,
      maxQueueDelayMs: 0,
      rowsMustAgree: true,
    });
  });

  it.each([
    ['an unnamed first dimension', model([spec('x', ['batch', 3])], [spec('y', [null, 3])]), 'output `y` has an unnamed first dimension'],
    ['a fixed first dimension before the batch axis', model([spec('x', ['batch', 3]), spec('state', [2, 'batch', 8])], [spec('y', ['batch', 3])]), 'input `state` has its batch axis `batch` at position 1, not first'],
    ['a fixed first dimension and no batch axis', model([spec('x', ['batch', 3]), spec('bias', [3])], [spec('y', ['batch', 3])]), 'input `bias` has a fixed first dimension (3)'],
    ['a batch axis that is not first', model([spec('x', ['batch', 4]), spec('state', ['layers', 'batch', 4])], [spec('y', ['batch', 4])]), 'input `state` has its batch axis `batch` at position 1, not first'],
    ['a scalar', model([spec('x', ['batch', 2]), spec('scale', [])], [spec('y', ['batch', 2])]), 'input `scale` is a scalar'],
    ['different names', model([spec('a', ['batch', 3]), spec('b', ['n', 3])], [spec('y', ['batch', 3])]), 'input `b` has first dimension `n`, not `batch`'],
    ['no inputs', model([], [spec('y', [3])]), 'the model has no inputs'],
  ])('without model.json batching: off for %s, naming the tensor', (_, shapes, reason) => {
    expect(decideBatching(shapes, undefined, true)).toEqual({ enabled: false, reason, maxBatchSize: 0, maxQueueDelayMs: 0, rowsMustAgree: false });
  });

  it('BATCHING=false turns it off, while a named batch dimension still binds requests', () => {
    expect(decideBatching(named, undefined, false)).toMatchObject({ enabled: false, reason: 'BATCHING=false', rowsMustAgree: true });
    expect(decideBatching(unnamed, { maxBatchSize: 16, maxQueueDelayMs: 5 }, false)).toMatchObject({ enabled: false, reason: 'BATCHING=false', rowsMustAgree: true });
    expect(decideBatching(unnamed, undefined, false)).toMatchObject({ enabled: false, reason: 'BATCHING=false', rowsMustAgree: false });
  });

  it('model.json maxBatchSize 0 or 1 turns it off even for a named batch dimension', () => {
    for (const maxBatchSize of [0, 1]) {
      expect(decideBatching(named, { maxBatchSize, maxQueueDelayMs: 0 }, true)).toEqual({
        enabled: false,
        reason: `model.json batching.maxBatchSize is ${maxBatchSize}`,
        maxBatchSize: 0,
        maxQueueDelayMs: 0,
        rowsMustAgree: true,
      });
    }
  });

  it('model.json maxBatchSize above 1 turns it on for dynamic first dimensions, named or not', () => {
    expect(decideBatching(unnamed, { maxBatchSize: 16, maxQueueDelayMs: 5 }, true)).toEqual({
      enabled: true,
      reason: 'model.json batching.maxBatchSize is 16',
      maxBatchSize: 16,
      maxQueueDelayMs: 5,
      rowsMustAgree: true,
    });
  });

  it.each([
    ['a fixed first dimension', model([spec('x', [2, 3])], [spec('y', [2, 3])]), 'input `x` has a fixed first dimension (2)'],
    ['a scalar', model([spec('x', ['batch', 2]), spec('scale', [])], [spec('y', ['batch', 2])]), 'input `scale` is a scalar'],
    ['a scalar output', model([spec('x', ['batch', 2])], [spec('total', [])]), 'output `total` is a scalar'],
  ])('model.json maxBatchSize above 1 stays off for %s, with a warning', (_, shapes, problem) => {
    expect(decideBatching(shapes, { maxBatchSize: 16, maxQueueDelayMs: 0 }, true)).toEqual({
      enabled: false,
      reason: `model.json batching.maxBatchSize is 16, but ${problem}`,
      maxBatchSize: 0,
      maxQueueDelayMs: 0,
      rowsMustAgree: false,
      warning: `model.json asks for batching, but ${problem}`,
    });
  });
});
