import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestApp } from './helpers/app.ts';
import { onPostgres } from './helpers/test-database.ts';

const emptyRepository = () => mkdtempSync(join(tmpdir(), 'empty-'));

describe('the connection that writes history', () => {
  it.skipIf(onPostgres)('SQLite: syncs every commit (synchronous=FULL, 2) by default, in WAL mode', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: emptyRepository() } });
    try {
      // The gateway's own history writer: the connection every INSERT goes through.
      expect(await t.app.historyWriter.setting('synchronous')).toBe(2);
      expect(await t.app.historyWriter.setting('journal_mode')).toBe('wal');
    } finally {
      await t.close();
    }
  });

  it.skipIf(onPostgres)('SQLite: uses synchronous=NORMAL (1) when SQLITE_SYNCHRONOUS=NORMAL', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: emptyRepository(), SQLITE_SYNCHRONOUS: 'NORMAL' } });
    try {
      expect(await t.app.historyWriter.setting('synchronous')).toBe(1);
    } finally {
      await t.close();
    }
  });

  it.runIf(onPostgres)('PostgreSQL: commits wait for the WAL flush (synchronous_commit=on, fsync=on)', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: emptyRepository() } });
    try {
      expect(await t.app.historyWriter.setting('synchronous_commit')).toBe('on');
      expect(await t.app.historyWriter.setting('fsync')).toBe('on');
    } finally {
      await t.close();
    }
  });
});
