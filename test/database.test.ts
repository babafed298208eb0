import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestApp } from './helpers/app.ts';


describe('the connection that writes history', () => {
  it('syncs every commit (synchronous=FULL, 2) by default, in WAL mode', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: mkdtempSync(join(tmpdir(), 'empty-')) } });
    try {
      // The gateway's own history writer: the connection every INSERT goes through.
      expect(t.app.historyWriter.pragma('synchronous')).toBe(2);
      expect(t.app.historyWriter.pragma('journal_mode')).toBe('wal');
    } finally {
      await t.close();
    }
  });

  it('uses synchronous=NORMAL (1) when SQLITE_SYNCHRONOUS=NORMAL', async () => {
    const t = await createTestApp({ env: { MODEL_REPOSITORY: mkdtempSync(join(tmpdir(), 'empty-')), SQLITE_SYNCHRONOUS: 'NORMAL' } });
    try {
      expect(t.app.historyWriter.pragma('synchronous')).toBe(1);
    } finally {
      await t.close();
    }
  });
});
