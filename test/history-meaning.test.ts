import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestApp } from './helpers/app.ts';
import { createTestDatabase } from './helpers/test-database.ts';

const READ = `query($id: ID!) { prediction(id: $id) { label scores { label probability } value } }`;

describe('the history keeps what the client was told', () => {
  it('label, scores and value of a stored prediction do not change when model.json is edited and the server restarts', async () => {
    const repo = mkdtempSync(join(tmpdir(), 'meaning-'));
    cpSync('models/iris', join(repo, 'iris'), { recursive: true });
    cpSync('models/diabetes', join(repo, 'diabetes'), { recursive: true });
    const database = await createTestDatabase();

    const first = await createTestApp({ modelRepository: repo, database });
    const iris = await first.gql(`mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { id label scores { label probability } value } }`);
    const diabetes = await first.gql(`mutation { predict(input: { model: "diabetes", features: [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87] }) { id label scores { label probability } value } }`);
    await first.close();
    const told = { iris: iris.body.data.predict, diabetes: diabetes.body.data.predict };
    expect(told.iris.label).toBe('setosa');
    expect(told.diabetes.value).toEqual(expect.any(Number));

    // New labels for iris; diabetes is no longer called a regressor.
    const irisManifest = JSON.parse(readFileSync(join(repo, 'iris', 'model.json'), 'utf8'));
    irisManifest.labels = ['A', 'B', 'C'];
    writeFileSync(join(repo, 'iris', 'model.json'), JSON.stringify(irisManifest));
    const diabetesManifest = JSON.parse(readFileSync(join(repo, 'diabetes', 'model.json'), 'utf8'));
    diabetesManifest.kind = 'GENERIC';
    writeFileSync(join(repo, 'diabetes', 'model.json'), JSON.stringify(diabetesManifest));

    const second = await createTestApp({ modelRepository: repo, database });
    try {
      for (const [model, answer] of Object.entries(told)) {
        const { id, ...meaning } = answer;
        expect((await second.gql(READ, { id })).body.data.prediction, model).toEqual(meaning);
      }
      // New predictions use the edited manifest.
      const now = await second.gql(`mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { label } }`);
      expect(now.body.data.predict.label).toBe('A');
    } finally {
      await second.close();
      await database.drop();
    }
  });
});
