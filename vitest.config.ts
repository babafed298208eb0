import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import pg from 'pg';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

const require = createRequire(import.meta.url);

/** Where the `postgres` project creates its databases (one per gateway); override with TEST_POSTGRES_URL. */
const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/**
 * The test files that touch a database: those using a gateway, app, process or database
 * helper, or opening the store. They run once per database; the others (pure units) once.
 */
const DATABASE_TESTS = readdirSync('test')
  .filter((name) => name.endsWith('.test.ts'))
  .filter((name) => /helpers\/(gateway|app|process|test-database)\.ts|src\/store\/database\.ts/.test(readFileSync(`test/${name}`, 'utf8')))
  .map((name) => `test/${name}`);

/** Files that start a gateway but test nothing of the database, each with why: once, on SQLite, is enough. */
const NOT_ON_POSTGRES: Record<string, string> = {
  'test/graphiql.test.ts': 'a browser driving the GraphiQL page (40 s); the database plays no part',
};

async function postgresAnswers(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return (error as Error).message || String((error as { code?: string }).code);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export default defineConfig(async () => {
  // Vitest evaluates this file more than once per run: decide and print once, in the environment.
  if (process.env.TEST_POSTGRES_DOWN === undefined) {
    process.env.TEST_POSTGRES_DOWN = (await postgresAnswers()) ?? '';
    const where = new URL(POSTGRES_URL).host;
    if (process.env.TEST_POSTGRES_DOWN) console.log(`\nPostgreSQL does not answer at ${where} (${process.env.TEST_POSTGRES_DOWN}): SKIPPING the postgres project, database tests run on SQLite only.\n`);
    else {
      const skipped = Object.entries(NOT_ON_POSTGRES).map(([file, why]) => `  ${file}: ${why}`);
      console.log(`\nDatabase tests run twice: project sqlite, and project postgres on ${where}. Not on postgres:\n${skipped.join('\n')}\n`);
    }
  }
  const postgresDown = process.env.TEST_POSTGRES_DOWN !== '';
  // Names of this run's PostgreSQL databases start with it (test/helpers/test-database.ts).
  process.env.TEST_DATABASE_PREFIX ??= `gw_${process.pid}_${randomBytes(3).toString('hex')}`;
  const projects: TestProjectInlineConfiguration[] = [{ extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'], env: { TEST_DATABASE: 'sqlite' } } }];
  if (!postgresDown) {
    projects.push({
      extends: true,
      test: {
        name: 'postgres',
        include: DATABASE_TESTS.filter((file) => !(file in NOT_ON_POSTGRES)),
        env: { TEST_DATABASE: 'postgres', TEST_POSTGRES_URL: POSTGRES_URL, TEST_DATABASE_PREFIX: process.env.TEST_DATABASE_PREFIX },
        globalSetup: ['test/helpers/postgres-setup.ts'],
      },
    });
  }
  return {
    resolve: {
      // graphql 16 ships CJS (main) and ESM (module) builds. Node loads the CJS one for
      // Pothos and Yoga; make Vite hand our sources the same copy, or graphql-js sees two
      // realms ("Cannot use GraphQLScalarType from another module").
      alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
    },
    test: {
      // Native addons (onnxruntime, better-sqlite3) are happiest in child processes.
      pool: 'forks',
      testTimeout: 30_000,
      hookTimeout: 60_000,
      projects,
    },
  };
});
