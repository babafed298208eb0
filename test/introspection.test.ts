import { readFileSync } from 'node:fs';
import { buildClientSchema, getIntrospectionQuery, lexicographicSortSchema, printSchema, type IntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.ts';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('introspection passes the operation limits', () => {
  it('answers the standard introspection query with every option on, and it rebuilds into schema/schema.graphql', async () => {
    const query = getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
      oneOf: true,
    });
    const res = await t.gql<IntrospectionQuery>(query);
    expect(res.body.errors).toBeUndefined();
    const rebuilt = buildClientSchema(res.body.data!);
    expect(`${printSchema(lexicographicSortSchema(rebuilt))}\n`).toBe(readFileSync('schema/schema.graphql', 'utf8'));
  });
});
