import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.ts';

const PREDICT = /* GraphQL */ `
  mutation Predict($input: PredictInput!) {
    predict(input: $input) {
      id modelName version label value latencyMs createdAt
      scores { label index probability }
      outputs { name datatype shape data }
      inputs { name datatype shape data }
      model { name kind }
    }
  }
`;

/** A real row of each shipped data set (first data line of the copied CSVs). */
function firstRow(model: string): number[] {
  switch (model) {
    case 'iris':
      return readFileSync('datasets/iris.csv', 'utf8').split('\n')[1]!.split(',').slice(0, 4).map(Number);
    case 'breast_cancer':
      return readFileSync('datasets/breast_cancer.csv', 'utf8').split('\n')[1]!.split(',').slice(0, 30).map(Number);
    case 'diabetes':
      return [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
    case 'digits':
      return Array.from({ length: 64 }, (_, i) => (i * 7) % 17);
    default:
      throw new Error(model);
  }
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

describe('predict', () => {
  it('answers iris [5.1, 3.5, 1.4, 0.2] with setosa above 0.9 and stores it', async () => {
    const res = await gw.gql(PREDICT, { input: { model: 'iris', features: [5.1, 3.5, 1.4, 0.2] } });
    expect(res.body.errors).toBeUndefined();
    const p = res.body.data.predict;
    expect(p.label).toBe('setosa');
    expect(p.scores[0]).toMatchObject({ label: 'setosa', index: 0 });
    expect(p.scores[0].probability).toBeGreaterThan(0.9);
    expect(p.scores.map((s: any) => s.label).sort()).toEqual(['setosa', 'versicolor', 'virginica']);
    const total = p.scores.reduce((a: number, s: any) => a + s.probability, 0);
    expect(total).toBeCloseTo(1, 5);
    expect(p.value).toBeNull();
    expect(p.model).toEqual({ name: 'iris', kind: 'CLASSIFIER' });
    expect(p.version).toBe(1);
    expect(p.latencyMs).toBeGreaterThan(0);
    expect(p.inputs).toEqual([{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }]);
    // The id is a UUIDv7 and the prediction is readable straight away.
    expect(p.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const back = await gw.gql(`query($id: ID!) { prediction(id: $id) { id label outputs { data } } }`, { id: p.id });
    expect(back.body.data.prediction).toEqual({ id: p.id, label: 'setosa', outputs: [{ data: p.outputs[0].data }] });
  });

  it('asks only for what is selected', async () => {
    const res = await gw.gql(`mutation { predict(input: { model: "iris", features: [6.7, 3.0, 5.2, 2.3] }) { label } }`);
    expect(res.body).toEqual({ data: { predict: { label: 'virginica' } } });
  });

  it.each(['iris', 'breast_cancer', 'diabetes', 'digits'])('%s: outputs equal a direct InferenceSession run', async (model) => {
    const features = firstRow(model);
    const res = await gw.gql(PREDICT, { input: { model, features } });
    expect(res.body.errors).toBeUndefined();
    const p = res.body.data.predict;

    const session = await ort.InferenceSession.create(`models/${model}/1/model.onnx`);
    const direct = await session.run({ features: new ort.Tensor('float32', Float32Array.from(features), [1, features.length]) });
    await session.release();
    const [name, tensor] = Object.entries(direct)[0]!;
    expect(p.outputs).toEqual([{ name, datatype: 'FP32', shape: [...tensor.dims], data: Array.from(tensor.data as Float32Array) }]);

    const manifest = JSON.parse(readFileSync(`models/${model}/model.json`, 'utf8'));
    const data = Array.from(tensor.data as Float32Array);
    if (manifest.kind === 'CLASSIFIER') {
      const best = data.indexOf(Math.max(...data));
      expect(p.label).toBe(manifest.labels[best]);
      expect(p.value).toBeNull();
    } else {
      expect(p.value).toBe(data[0]);
      expect(p.label).toBeNull();
      expect(p.scores).toBeNull();
    }
  });

  it('runs several rows through the general `inputs` form', async () => {
    const rows = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3];
    const res = await gw.gql(PREDICT, {
      input: { model: 'iris', version: 1, inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 4], data: rows }] },
    });
    expect(res.body.errors).toBeUndefined();
    const out = res.body.data.predict.outputs[0];
    expect(out.shape).toEqual([2, 3]);
    expect(res.body.data.predict.label).toBe('setosa'); // first row
    const secondRow = out.data.slice(3);
    expect(secondRow.indexOf(Math.max(...secondRow))).toBe(2); // virginica
  });

  it('limits scores with `top`', async () => {
    const res = await gw.gql(`mutation { predict(input: { model: "digits", features: [${firstRow('digits').join(',')}] }) { scores(top: 3) { label } } }`);
    expect(res.body.data.predict.scores).toHaveLength(3);
  });
});

describe('GraphQL over HTTP', () => {
  it('answers queries over GET, and refuses mutations over GET', async () => {
    const get = await fetch(`${gw.url}/graphql?query=${encodeURIComponent('{ models { name kind } }')}`, { headers: { accept: 'application/json' } });
    expect(get.status).toBe(200);
    const models = (await get.json()).data.models;
    expect(models.map((m: { name: string }) => m.name)).toEqual(['breast_cancer', 'diabetes', 'digits', 'fortune', 'iris']);
    const before = await gw.countRows();
    const mutation = await fetch(`${gw.url}/graphql?query=${encodeURIComponent('mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id } }')}`, {
      headers: { accept: 'application/json' },
    });
    expect(mutation.status).toBe(405);
    expect(await gw.countRows()).toBe(before);
  });

  it('serves GraphiQL to browsers', async () => {
    const page = await fetch(`${gw.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>ONNX GraphQL gateway</title>');
  });
});
