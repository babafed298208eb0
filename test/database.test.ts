import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestApp } from './helpers/app.ts';

const synchronous = async (db: { $queryRawUnsafe(sql: string): Promise<unknown> }) =>
  Number(((await db.$queryRawUnsafe('PRAGMA synchronous')) as Array<{ synchronous: bigint | number }>)[0]!.synchronous);

describe('the connection that writes history', () => {
  it('syncs every commit (synchronous=FULL, 2) by default, in WAL mode', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: mkdtempSync(join(tmpdir(), 'empty-')) } });
    try {
      // The gateway's own Prisma client: the adapter holds one connection, the one inserts go through.
      expect(await synchronous(t.app.db)).toBe(2);
      const mode = (await t.app.db.$queryRawUnsafe('PRAGMA journal_mode')) as Array<{ journal_mode: string }>;
      expect(mode[0]!.journal_mode).toBe('wal');
    } finally {
      await t.close();
    }
  });

  it('uses synchronous=NORMAL (1) when SQLITE_SYNCHRONOUS=NORMAL', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: mkdtempSync(join(tmpdir(), 'empty-')), SQLITE_SYNCHRONOUS: 'NORMAL' } });
    try {
      expect(await synchronous(t.app.db)).toBe(1);
    } finally {
      await t.close();
    }
  });
});
