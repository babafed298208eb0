import { defineConfig } from 'prisma/config';

// The PostgreSQL twin of prisma.config.ts: `prisma generate --config prisma.postgres.config.ts`
// (run on install) writes the PostgreSQL client. Its schema is generated from the SQLite one
// (scripts/prisma/postgres-schema.ts); the server applies its migrations at start.
export default defineConfig({
  schema: 'prisma/postgres/schema.prisma',
  migrations: { path: 'prisma/postgres/migrations' },
});
