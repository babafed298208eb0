import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { POSTGRES_SCHEMA, postgresSchema, SQLITE_SCHEMA } from '../scripts/prisma/postgres-schema.ts';

const migrationNames = (dir: string) =>
  readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

describe('the PostgreSQL twin of the Prisma schema', () => {
  it('is generated from prisma/schema.prisma (run `npm run prisma:postgres` after editing the models)', () => {
    expect(readFileSync(POSTGRES_SCHEMA, 'utf8')).toBe(postgresSchema(readFileSync(SQLITE_SCHEMA, 'utf8')));
  });

  it('differs from it only in the provider and the client folder', () => {
    const sqlite = readFileSync(SQLITE_SCHEMA, 'utf8');
    const postgres = postgresSchema(sqlite);
    const models = (schema: string) => schema.slice(schema.indexOf('\n///'));
    expect(models(postgres)).toBe(models(sqlite));
    expect(postgres).toMatch(/provider = "postgresql"/);
    expect(postgres).toMatch(/output {7}= "\.\.\/\.\.\/src\/generated\/prisma-pg"/);
    expect(() => postgresSchema(sqlite.replace('"sqlite"', '"mysql"'))).toThrow('expected one match');
  });

  it('has a PostgreSQL migration for every SQLite migration, under the same name', () => {
    expect(migrationNames('prisma/postgres/migrations')).toEqual(migrationNames('prisma/migrations'));
  });
});
