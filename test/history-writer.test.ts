// A time zone that is not UTC, with a day-light-saving history: times must not shift on
// their way through the writers and back through Prisma.
process.env.TZ = 'America/Sao_Paulo';

import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionRecord } from '../src/serving/records.ts';
import { openStore, type Store } from '../src/store/database.ts';
import { createPredictionRepository } from '../src/store/prediction-repository.ts';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.ts';

let database: TestDatabase;
let store: Store;
const statements: string[] = [];
beforeAll(async () => {
  database = await createTestDatabase();
  store = await openStore(database.url, { onQuery: (sql) => statements.push(sql) });
});
afterAll(async () => {
  await store.close();
  await database.drop();
});

const record = (id = uuidv7(), createdAt = new Date()): PredictionRecord => ({
  id,
  modelName: 'adder',
  version: 2,
  createdAt,
  latencyMs: 0.5,
  inputs: [{ name: 'a', datatype: 'INT32', shape: [1], data: [1] }],
  outputs: [{ name: 'sum', datatype: 'INT32', shape: [1], data: [2] }],
  generation: null,
  interpretation: null,
  outcome: null,
});

const inserts = () => statements.filter((s) => /^INSERT INTO "Prediction"/.test(s)).length;

describe('the history writer', () => {
  it('keeps times exact in a process time zone other than UTC', async () => {
    expect(new Date('2026-01-15T12:00:00Z').getTimezoneOffset()).not.toBe(0);
    const times = ['2026-01-15T12:34:56.789Z', '2026-07-01T00:00:00.001Z', '2026-10-18T03:30:00.000Z'].map((t) => new Date(t));
    const records = times.map((t) => record(uuidv7(), t));
    await store.history.insert(records);
    const read = await store.db.prediction.findMany({ where: { id: { in: records.map((r) => r.id) } }, orderBy: { createdAt: 'asc' } });
    expect(read.map((r) => r.createdAt.toISOString())).toEqual(times.map((t) => t.toISOString()));
    // Prisma's own filters compare them as the same instants.
    const page = await createPredictionRepository(store.db, { writer: store.history }).page({ since: times[1], until: new Date(times[1]!.getTime() + 1) }, 10);
    expect(page.records.map((r) => r.id)).toEqual([records[1]!.id]);
  });

  it('commits more rows than one statement binds as several INSERTs in one transaction: all or none', async () => {
    // More than PostgreSQL's 65,535 parameters at 9 a row (and than SQLite's 500 rows a statement).
    const many = Array.from({ length: 8000 }, () => record());
    const before = await database.value('SELECT COUNT(*) FROM "Prediction"');

    statements.length = 0;
    await expect(store.history.insert([...many, record(many[0]!.id)])).rejects.toThrow();
    expect(inserts()).toBeGreaterThan(1); // the duplicate is in the last statement, after others ran
    expect(await database.value('SELECT COUNT(*) FROM "Prediction"')).toBe(before);

    statements.length = 0;
    await store.history.insert(many);
    expect(inserts()).toBeGreaterThan(1);
    expect(await database.value('SELECT COUNT(*) FROM "Prediction"')).toBe(before + many.length);
  });
});
