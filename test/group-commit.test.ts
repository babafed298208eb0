import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Database as PrismaDatabase, type Store } from '../src/store/database.ts';
import { createGroupCommit } from '../src/store/group-commit.ts';
import type { PredictionRecord } from '../src/serving/records.ts';
import type { HistoryWriter } from '../src/store/history-writer.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.ts';

let database: TestDatabase;
let store: Store;
let db: PrismaDatabase;
let writer: HistoryWriter;
const statements: string[] = [];
beforeAll(async () => {
  database = await createTestDatabase();
  store = await openStore(database.url, { onQuery: (sql) => statements.push(sql) });
  ({ db, history: writer } = store);
});
afterAll(async () => {
  await store.close();
  await database.drop();
});

const record = (id = uuidv7()): PredictionRecord => ({
  id,
  modelName: 'iris',
  version: 1,
  createdAt: new Date(),
  latencyMs: 1,
  inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }],
  // Outputs come from float32 arrays, so their values are exact float32s.
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3], data: [0.25, 0.25, 0.5] }],
  interpretation: { kind: 'CLASSIFIER', output: 'probabilities', labels: ['setosa', 'versicolor', 'virginica'] },
  // What the store computes from the stored interpretation when it reads the row back.
  outcome: {
    label: 'virginica',
    scores: [
      { label: 'virginica', index: 2, probability: 0.5 },
      { label: 'setosa', index: 0, probability: 0.25 },
      { label: 'versicolor', index: 1, probability: 0.25 },
    ],
    value: null,
  },
});

describe('group commit', () => {
  it('writes rows that arrive together in one INSERT, and answers each only once its row is visible', async () => {
    const repo = createPredictionRepository(db, { writer });
    const visible = async (id: string) => (await database.query('SELECT 1 FROM "Prediction" WHERE "id" = $1', [id])).length === 1;
    statements.length = 0;
    const records = Array.from({ length: 100 }, () => record());
    const seenOnResolve = await Promise.all(records.map((r) => repo.insert(r).then(() => visible(r.id))));
    expect(seenOnResolve.every(Boolean)).toBe(true);
    expect(repo.commitStats!.rows).toBe(100);
    expect(repo.commitStats!.groups).toBeLessThanOrEqual(2);
    expect(statements.filter((s) => /^INSERT/i.test(s.trim())).length).toBe(repo.commitStats!.groups);
    // What the raw write path stored reads back equal through the typed Prisma client.
    expect(await repo.findByIds(records.slice(0, 3).map((r) => r.id))).toEqual(records.slice(0, 3).map((r) => ({ ...r, generation: null, cached: false, apiKeyId: null })));
    const generation = { ...record(), generation: { prompt: 'a', text: 'b', finishReason: 'STOP' as const, tokens: 2, parameters: { maxTokens: 2, temperature: 0, topK: null, seed: 1, stop: ['x'] } } };
    await repo.insert(generation);
    expect(await repo.findByIds([generation.id])).toEqual([{ ...generation, cached: false, apiKeyId: null }]);
    const page = await repo.page({ model: 'iris', since: new Date(generation.createdAt.getTime() - 1), until: new Date(generation.createdAt.getTime() + 1) }, 5);
    expect(page.records.map((r) => r.id)).toContain(generation.id);
  });

  it('commits the rows of one round of I/O together, waiting for nothing more, and everything that arrives during a commit in the next one', async () => {
    const groups: number[][] = [];
    const inFlight: Array<() => void> = [];
    const committer = createGroupCommit<number>(
      (rows) => {
        groups.push(rows);
        return new Promise<void>((resolve) => inFlight.push(resolve));
      },
      async () => {},
    );
    const settled: number[] = [];
    const write = (n: number) => committer.write(n).then(() => settled.push(n));
    const first = [1, 2].map(write);
    expect(groups).toEqual([]); // requests of this round of I/O may still come
    await new Promise((r) => setImmediate(r));
    expect(groups).toEqual([[1, 2]]); // right after it: no timer, no waiting for company
    const rest = [3, 4, 5].map(write);
    await new Promise((r) => setImmediate(r));
    expect(groups).toEqual([[1, 2]]); // queued behind the commit in flight
    expect(settled).toEqual([]); // nobody is answered before its commit
    inFlight.shift()!();
    await Promise.all(first);
    await new Promise((r) => setImmediate(r));
    expect(groups).toEqual([[1, 2], [3, 4, 5]]);
    expect(settled).toEqual([1, 2]);
    inFlight.shift()!();
    await Promise.all(rest);
    expect(settled).toEqual([1, 2, 3, 4, 5]);
    expect(committer.stats).toEqual({ groups: 2, rows: 5 });
  });

  it('with delayMs, rows written over several rounds of I/O within the delay share one commit', async () => {
    const groups: number[][] = [];
    const committer = createGroupCommit<number>(
      async (rows) => void groups.push(rows),
      async () => {},
      { delayMs: 30 },
    );
    const writes = [];
    for (let n = 1; n <= 4; n++) {
      writes.push(committer.write(n));
      await new Promise((r) => setImmediate(r)); // without the delay, each would be its own commit
    }
    expect(groups).toEqual([]);
    await Promise.all(writes);
    expect(groups).toEqual([[1, 2, 3, 4]]);
  });

  it('a bad row fails only its caller', async () => {
    const repo = createPredictionRepository(db, { writer });
    const taken = record();
    await repo.insert(taken);
    const group = [record(), record(taken.id), record(), record()];
    const results = await Promise.allSettled(group.map((r) => repo.insert(r)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const found = await db.prediction.findMany({ where: { id: { in: group.map((r) => r.id) } } });
    expect(found).toHaveLength(4); // three new rows + the one that was there before
  });

  it('is off with groupCommit: false: one INSERT per row', async () => {
    const repo = createPredictionRepository(db, { writer, groupCommit: false });
    statements.length = 0;
    await Promise.all(Array.from({ length: 10 }, () => repo.insert(record())));
    expect(statements.filter((s) => /^INSERT/i.test(s.trim())).length).toBe(10);
    expect(repo.commitStats).toBeUndefined();
  });
});
