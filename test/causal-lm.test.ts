import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCausalLm, LogitsWidthError, stepFeeds } from '../src/inference/causal-lm.ts';
import { describeGenerator, type GeneratorInterface } from '../src/inference/generator-interface.ts';
import { manifestSchema } from '../src/inference/manifest.ts';
import type { TensorSpec } from '../src/inference/types.ts';
import { characters, gptGraph, gptWeights } from './helpers/gpt-model.ts';
import { referenceLogits } from './helpers/gpt-reference.ts';

const GPT = { vocab: 24, layers: 2, heads: 2, headDim: 4, seed: 7 };
const generator = (vocabulary: number) => manifestSchema.parse({ kind: 'GENERATOR', vocabulary: characters(vocabulary) });
const spec = (name: string, datatype: TensorSpec['datatype'], shape: number[]): TensorSpec => ({ name, datatype, shape, dimNames: shape.map(() => null) });
const ids = spec('input_ids', 'INT64', [-1, -1]);
const mask = spec('attention_mask', 'INT64', [-1, -1]);
const logits = spec('logits', 'FP32', [-1, -1, 24]);
const past = (l: number, kind: string, shape = [-1, 2, -1, 4]) => spec(`past_key_values.${l}.${kind}`, 'FP32', shape);
const present = (l: number, kind: string) => spec(`present.${l}.${kind}`, 'FP32', [-1, 2, -1, 4]);

describe('describeGenerator', () => {
  it('reads the cache tensors, their heads and head size from the input metadata', () => {
    const g = describeGenerator(generator(24), [ids, mask, spec('position_ids', 'INT64', [-1, -1]), past(0, 'key', [-1, 3, -1, 5])], [logits, present(0, 'key')]);
    expect(g).toEqual({
      logits: 'logits',
      vocabularySize: 24,
      attentionMask: true,
      positionIds: true,
      cache: [{ past: 'past_key_values.0.key', present: 'present.0.key', heads: 3, headDim: 5 }],
      contextLength: -1,
    });
    expect(describeGenerator(generator(24), [ids], [logits])).toMatchObject({ attentionMask: false, positionIds: false, cache: [] });
  });

  it('refuses what it cannot drive, naming the tensor and the numbers', () => {
    expect(() => describeGenerator(generator(20), [ids], [logits])).toThrow(
      'model.json lists 20 vocabulary entries but output `logits` has 24 (its last dimension)',
    );
    expect(() => describeGenerator(generator(24), [ids, past(0, 'key', [-1, -1, -1, 4])], [logits, present(0, 'key')])).toThrow(
      'input `past_key_values.0.key` must be float32 [batch, heads, past_length, head_dim] with static heads and head_dim (they size the first step\'s empty cache); the model has FP32 [?, ?, ?, 4]',
    );
    expect(() => describeGenerator(generator(24), [ids, past(0, 'key')], [logits])).toThrow('input `past_key_values.0.key` has no matching output `present.0.key`');
    expect(() => describeGenerator(generator(24), [ids, spec('use_cache_branch', 'BOOL', [1])], [logits])).toThrow(
      'input `use_cache_branch` is not part of the causal-LM interface',
    );
    expect(() => describeGenerator(manifestSchema.parse({ kind: 'GENERATOR' }), [ids], [logits])).toThrow('needs a `vocabulary`');
    expect(() => describeGenerator(generator(24), [spec('input_ids', 'INT32', [-1, -1])], [logits])).toThrow('the model has INT32 [?, ?]');
    // A dynamic width cannot be checked here: it is checked on the first run.
    expect(describeGenerator(generator(20), [ids], [spec('logits', 'FP32', [-1, -1, -1])]).vocabularySize).toBe(20);
  });
});

describe('stepFeeds', () => {
  const g: GeneratorInterface = {
    logits: 'logits',
    vocabularySize: 24,
    attentionMask: true,
    positionIds: true,
    cache: [{ past: 'past_key_values.0.key', present: 'present.0.key', heads: 2, headDim: 4 }],
    contextLength: -1,
  };
  const view = (feeds: Record<string, ort.Tensor>) =>
    Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, { dims: t.dims, data: Array.from(t.data as ArrayLike<bigint | number>, Number) }]));

  it('first step: the whole prompt with an empty cache', () => {
    expect(view(stepFeeds(g, [5, 6, 7], 0))).toEqual({
      input_ids: { dims: [1, 3], data: [5, 6, 7] },
      attention_mask: { dims: [1, 3], data: [1, 1, 1] },
      position_ids: { dims: [1, 3], data: [0, 1, 2] },
      'past_key_values.0.key': { dims: [1, 2, 0, 4], data: [] },
    });
  });

  it('later steps: one token at the next position, the previous presents as the past', () => {
    const previous = new ort.Tensor('float32', new Float32Array(2 * 3 * 4), [1, 2, 3, 4]);
    const feeds = stepFeeds(g, [9], 3, { 'present.0.key': previous });
    expect(feeds['past_key_values.0.key']).toBe(previous);
    expect(view(feeds)).toMatchObject({
      input_ids: { dims: [1, 1], data: [9] },
      attention_mask: { dims: [1, 4], data: [1, 1, 1, 1] },
      position_ids: { dims: [1, 1], data: [3] },
    });
    expect(() => stepFeeds(g, [9], 3, {})).toThrow('output `present.0.key` is missing');
  });
});

describe('the test GPT graph', () => {
  let session: ort.InferenceSession;
  let version: { inputs: TensorSpec[]; outputs: TensorSpec[] };
  /** Runs made through the causal LM's `step`. */
  let steps = 0;
  const step = (feeds: Record<string, ort.Tensor>) => {
    steps++;
    return session.run(feeds);
  };
  beforeAll(async () => {
    session = await ort.InferenceSession.create(gptGraph(GPT));
    const specs = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
      list.map((m) => {
        if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
        return spec(m.name, m.type === 'int64' ? 'INT64' : 'FP32', m.shape.map((d) => (typeof d === 'number' ? d : -1)));
      });
    const inputs = specs(session.inputMetadata);
    const outputs = specs(session.outputMetadata);
    version = { inputs, outputs };
  });
  afterAll(() => session.release());

  it('computes the hand-written forward pass, and cached steps give the full context\'s logits', async () => {
    const sequence = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3];
    const expected = referenceLogits(gptWeights(GPT), sequence);
    const g = describeGenerator(generator(24), version.inputs, version.outputs);
    expect(g.cache).toHaveLength(4);

    const full = (await session.run(stepFeeds(g, sequence, 0))).logits!.data as Float32Array;
    expect(full).toHaveLength(expected.length);
    full.forEach((value, i) => expect(Math.abs(value - expected[i]!)).toBeLessThan(1e-4));

    steps = 0;
    const lm = createCausalLm({ step }, g);
    const prompt = 5;
    const rows = [await lm.start(sequence.slice(0, prompt))];
    for (const token of sequence.slice(prompt, -1)) rows.push(await lm.next(token));
    rows.forEach((row, k) => {
      const position = prompt - 1 + k;
      expect(row).toHaveLength(24);
      Array.from(row).forEach((value, c) => expect(Math.abs(value - expected[position * 24 + c]!)).toBeLessThan(1e-4));
    });
    expect(steps).toBe(sequence.length - prompt);
  });

  it('throws LogitsWidthError when the logits do not fit the vocabulary, and only throws: the caller reports it', async () => {
    // The graph's logits are 24 wide; a 20-entry vocabulary can only be caught on a run when the width is dynamic.
    const g = { ...describeGenerator(generator(24), version.inputs, version.outputs), vocabularySize: 20 };
    steps = 0;
    const lm = createCausalLm(Object.freeze({ step }), g);
    const error = await lm.start([1, 2, 3]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LogitsWidthError);
    expect((error as Error).message).toBe('model.json lists 20 vocabulary entries but output `logits` has 24 (its last dimension)');
    expect(steps).toBe(1);
  });
});
