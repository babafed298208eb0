import { defineConfig } from 'prisma/config';

// Used only by `prisma generate` (run on install). Migrations are applied by the
// server at start, not by the CLI, whose native schema engine cannot be downloaded
// on offline machines.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
