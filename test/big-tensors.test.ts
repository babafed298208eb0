import { GraphQLFloat, GraphQLInt, GraphQLList, GraphQLNonNull } from 'graphql';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../src/schema/index.ts';
import { TensorVariables } from '../src/transport/use-tensor-variables.ts';
import { createTestApp, type TestApp } from './helpers/app.ts';

let t: TestApp;
let session: ort.InferenceSession;
beforeAll(async () => {
  t = await createTestApp();
  session = await ort.InferenceSession.create('models/iris/1/model.onnx');
});
afterAll(async () => {
  await t?.close();
  await session?.release();
});

const ROWS = 5_000;
const rows = Array.from({ length: ROWS * 4 }, (_, i) => Math.round(([5.1, 3.5, 1.4, 0.2][i % 4]! + (i % 11) * 0.07) * 100) / 100);
const PREDICT = `mutation($i: [TensorInput!]!) { predict(input: { model: "iris", inputs: $i }) { id inputs { data } outputs { name shape data } } }`;

describe('big tensors in variables (the path that skips per-element coercion)', () => {
  it('a 5,000-row tensor answers exactly what ONNX Runtime computes on it, and the history returns the same inputs and outputs', async () => {
    const res = await t.gql(PREDICT, { i: [{ name: 'features', datatype: 'FP32', shape: [ROWS, 4], data: rows }] });
    expect(res.body.errors).toBeUndefined();
    const answer = res.body.data.predict;
    const direct = await session.run({ features: new ort.Tensor('float32', Float32Array.from(rows), [ROWS, 4]) });
    expect(answer.outputs).toEqual([{ name: 'probabilities', shape: [ROWS, 3], data: Array.from(direct.probabilities!.data as Float32Array) }]);
    expect(answer.inputs[0].data).toEqual(rows);
    const stored = await t.gql(`query($id: ID!) { prediction(id: $id) { inputs { data } outputs { name shape data } } }`, { id: answer.id });
    expect(stored.body.data.prediction).toEqual({ inputs: answer.inputs, outputs: answer.outputs });
  });

  it('a big list with something other than a finite number in it gets the usual variable error, and nothing is stored', async () => {
    const before = await t.app.db.prediction.count();
    const bad = [...rows];
    bad[4321] = 'x' as unknown as number;
    const res = await t.gql(PREDICT, { i: [{ name: 'features', datatype: 'FP32', shape: [ROWS, 4], data: bad }] });
    expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(JSON.stringify(res.body.errors![0]!.extensions!.issues)).toContain('4321');
    expect(await t.app.db.prediction.count()).toBe(before);
  });

  it('a big `features` list is restored too: the count is checked against the real list', async () => {
    const res = await t.gql(`mutation($f: [Float!]!) { predict(input: { model: "iris", features: $f }) { id } }`, { f: rows.slice(0, 2000) });
    expect(res.body.errors![0]!.extensions!.issues).toEqual([{ path: ['input', 'features'], message: expect.stringContaining('expected 4 values') }]);
    expect(res.body.errors![0]!.extensions!.issues[0].message).toContain('got 2000');
  });
});

describe('TensorVariables', () => {
  const floats = new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(GraphQLFloat)));
  const tensorInputs = new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(schema.getType('TensorInput') as never)));

  it('swaps Float lists of 1,024 or more finite numbers for a token list, and restores the very same array', () => {
    const tv = new TensorVariables();
    const big = Array.from({ length: 1024 }, (_, i) => i / 3);
    const swapped = tv.swap(big, floats) as number[];
    expect(swapped).toHaveLength(1);
    expect(tv.restore(swapped)).toBe(big);
    const inputs = [{ name: 'x', datatype: 'FP32', shape: [1024], data: big }];
    tv.swap(inputs, tensorInputs);
    expect(inputs[0]!.data).toHaveLength(1);
    expect(tv.restore(inputs[0]!.data)).toBe(big);
  });

  it('leaves alone short lists, lists with a non-number or a non-finite number, and lists of other types', () => {
    const tv = new TensorVariables();
    const short = Array.from({ length: 1023 }, (_, i) => i);
    const withString = [...Array.from({ length: 2000 }, (_, i) => i), 'x'];
    const withInfinity = [...Array.from({ length: 2000 }, (_, i) => i), Infinity];
    const ints = Array.from({ length: 2000 }, (_, i) => i);
    expect(tv.swap(short, floats)).toBe(short);
    expect(tv.swap(withString, floats)).toBe(withString);
    expect(tv.swap(withInfinity, floats)).toBe(withInfinity);
    expect(tv.swap(ints, new GraphQLList(GraphQLInt))).toBe(ints);
    expect(tv.restore([0.5])).toEqual([0.5]); // not a token of this operation
  });
});
