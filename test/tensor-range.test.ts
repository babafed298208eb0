import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.ts';
import { writeAdderModel } from './helpers/onnx-models.ts';

let t: TestApp;
beforeAll(async () => {
  const repo = mkdtempSync(join(tmpdir(), 'range-'));
  writeAdderModel(repo);
  t = await createTestApp({ modelRepository: repo });
});
afterAll(async () => {
  await t?.close();
});

const PREDICT = `mutation($inputs: [TensorInput!]!) { predict(input: { model: "adder", inputs: $inputs }) { outputs { name data } } }`;
const inputs = (a: number[]) => [
  { name: 'a', datatype: 'FP32', shape: [1, 3], data: a },
  { name: 'b', datatype: 'FP32', shape: [1, 3], data: [0, 0, 0] },
  { name: 'n', datatype: 'INT64', shape: [1, 2], data: [1, 2] },
];

describe('numbers outside a datatype range', () => {
  it('refuses a value beyond FP32 range (1e39) with BAD_USER_INPUT on a model without feature ranges, and stores nothing', async () => {
    const res = await t.gql(PREDICT, { inputs: inputs([1, 1e39, -1e39]) });
    expect(res.body.data).toBeNull();
    expect(res.body.errors![0]!.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      issues: [
        { path: ['input', 'inputs', 0, 'data', 1], message: expect.stringContaining('FP32 takes numbers from -3.4028234663852886e+38 to 3.4028234663852886e+38, got 1e+39') },
        { path: ['input', 'inputs', 0, 'data', 2], message: expect.stringContaining('got -1e+39') },
      ],
    });
    const count = await t.app.db.prediction.count();
    expect(count).toBe(0);
  });

  it('accepts the largest finite FP32 value', async () => {
    const res = await t.gql(PREDICT, { inputs: inputs([3.4028234663852886e38, 0, 0]) });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.predict.outputs[0].data[0]).toBe(3.4028234663852886e38);
  });
});
