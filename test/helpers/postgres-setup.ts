import { dropTestDatabases } from './test-database.ts';

/**
 * Global setup of the `postgres` project: at the end of the run, drops the databases this
 * run created that are still there (those of gateway processes, and of tests that failed
 * before closing theirs). Only this run's: other runs may share the server.
 */
export default function setup() {
  return async () => {
    const left = await dropTestDatabases(process.env.TEST_DATABASE_PREFIX!);
    if (left.length > 0) console.log(`postgres: dropped ${left.length} test database(s) left by gateway processes or failed tests`);
  };
}
