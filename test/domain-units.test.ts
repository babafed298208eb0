import { describe, expect, it } from 'vitest';
import { classScores, interpretationOf, regressionValue } from '../src/inference/interpretation.ts';
import { manifestSchema } from '../src/inference/manifest.ts';
import { sampleToken, seededRandom } from '../src/inference/sampling.ts';
import { Tokenizer } from '../src/inference/tokenizer.ts';
import type { TensorData } from '../src/inference/types.ts';

const tensor = (name: string, shape: number[], data: number[]): TensorData => ({ name, datatype: 'FP32', shape, data });

describe('output interpretation (no server)', () => {
  const classifier = manifestSchema.parse({ kind: 'CLASSIFIER', labels: ['a', 'b', 'c'], output: 'p' });

  it('a classifier: classes of the first row of the named output, by probability, ties by index', () => {
    const meaning = interpretationOf(classifier, 'logits');
    expect(meaning).toEqual({ kind: 'CLASSIFIER', output: 'p', labels: ['a', 'b', 'c'] });
    const outputs = [tensor('logits', [2, 3], [9, 9, 9, 9, 9, 9]), tensor('p', [2, 3], [0.25, 0.5, 0.25, 1, 0, 0])];
    expect(classScores(outputs, meaning)).toEqual([
      { label: 'b', index: 1, probability: 0.5 },
      { label: 'a', index: 0, probability: 0.25 },
      { label: 'c', index: 2, probability: 0.25 },
    ]);
    expect(regressionValue(outputs, meaning)).toBeNull();
  });

  it('without labels the class label is its index; without `output` the first output is read', () => {
    const meaning = interpretationOf(manifestSchema.parse({ kind: 'CLASSIFIER' }), 'y');
    expect(classScores([tensor('y', [1, 2], [0.1, 0.9])], meaning)!.map((s) => s.label)).toEqual(['1', '0']);
  });

  it('a regressor: the first value of the main output; other kinds have no scores or value', () => {
    const meaning = interpretationOf(manifestSchema.parse({ kind: 'REGRESSOR' }), 'value');
    expect(regressionValue([tensor('value', [2, 1], [151.5, 3])], meaning)).toBe(151.5);
    expect(classScores([tensor('value', [2, 1], [151.5, 3])], meaning)).toBeNull();
    const generic = interpretationOf(manifestSchema.parse({}), 'y');
    expect([classScores([tensor('y', [1], [1])], generic), regressionValue([tensor('y', [1], [1])], generic)]).toEqual([null, null]);
  });
});

describe('sampling (no server)', () => {
  const logits = [0.1, 2.0, 1.9, -3];

  it('temperature 0 is greedy', () => {
    expect(sampleToken(logits, { temperature: 0 }, () => 0.999)).toBe(1);
  });

  it('the same seed gives the same tokens, another seed other tokens', () => {
    const draw = (seed: number) => {
      const random = seededRandom(seed);
      return Array.from({ length: 40 }, () => sampleToken(logits, { temperature: 1 }, random));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('topK keeps only the k most likely tokens', () => {
    const random = seededRandom(1);
    const seen = new Set(Array.from({ length: 500 }, () => sampleToken(logits, { temperature: 5, topK: 2 }, random)));
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('follows the softmax at temperature 1 (frequencies within 2 points over 20,000 draws)', () => {
    const random = seededRandom(3);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[sampleToken(logits, { temperature: 1 }, random)]!++;
    const exp = logits.map((l) => Math.exp(l));
    const total = exp.reduce((a, b) => a + b, 0);
    counts.forEach((c, i) => expect(Math.abs(c / 20_000 - exp[i]! / total)).toBeLessThan(0.02));
  });
});

describe('tokenizer (no server)', () => {
  const tokenizer = new Tokenizer(['a', 'b', 'ab', 'abc', ' ', '']);

  it('encodes by greedy longest match and decodes back', () => {
    const { ids, unknown } = tokenizer.encode('abcab a');
    expect(ids).toEqual([3, 2, 4, 0]);
    expect(unknown).toEqual([]);
    expect(tokenizer.decode(ids)).toBe('abcab a');
  });

  it('reports characters no token covers, with their positions (astral characters whole)', () => {
    expect(tokenizer.encode('a😀x').unknown).toEqual([
      { index: 1, char: '😀' },
      { index: 3, char: 'x' },
    ]);
  });
});

describe('request validation (no server)', async () => {
  const { requestTensors } = await import('../src/inference/tensors.ts');
  const { BadUserInputError } = await import('../src/errors.ts');
  const spec = (name: string, datatype: TensorData['datatype'], shape: number[]) => ({ name, datatype, shape, dimNames: shape.map((d) => (d === -1 ? 'batch' : null)) });
  const noManifest = manifestSchema.parse({});
  const adder = {
    name: 'adder',
    version: 1,
    manifest: noManifest,
    inputs: [spec('a', 'FP32', [-1, 3]), spec('n', 'INT64', [-1, 2])],
    outputs: [spec('sum', 'FP32', [-1, 3])],
    batching: { rowsMustAgree: true },
  } as never;
  const issuesOf = (f: () => unknown) => {
    try {
      f();
    } catch (error) {
      if (error instanceof BadUserInputError) return error.issues.map((i) => [i.path.join('.'), i.message]);
      throw error;
    }
    return [];
  };

  it('lists every problem at once, each at its path', () => {
    const issues = issuesOf(() =>
      requestTensors(adder, {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, Number.NaN, 1e39] },
          { name: 'n', datatype: 'INT64', shape: [1, 2], data: [2.5, 1] },
        ],
      }),
    );
    expect(issues).toEqual([
      ['input.inputs.0.data.1', 'expected a finite number, got NaN'],
      ['input.inputs.0.data.2', 'FP32 takes numbers from -3.4028234663852886e+38 to 3.4028234663852886e+38, got 1e+39'],
      ['input.inputs.1.data.0', expect.stringContaining('INT64 takes whole numbers')],
    ]);
  });

  it('refuses inputs that disagree on the batch dimension of a model that declares one', () => {
    const issues = issuesOf(() =>
      requestTensors(adder, {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
          { name: 'n', datatype: 'INT64', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
        ],
      }),
    );
    expect(issues).toEqual([['input.inputs.1.shape.0', expect.stringContaining('first dimension')]]);
  });

  it('features are only for a model with one tabular input', () => {
    expect(issuesOf(() => requestTensors(adder, { features: [1, 2, 3] }))).toEqual([['input.features', expect.stringContaining('has 2 inputs')]]);
  });
});
