import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface ResultFile {
  /** Where the lines go until `commit`. */
  readonly temp: string;
  /** Appends text; waits while the stream's buffer is full (back-pressure). */
  write(text: string): Promise<void>;
  /** Ends the file, flushed to disk, and renames it to its final name. */
  commit(): Promise<void>;
  /** Removes the temp file (after a failure or interruption); nothing once committed. */
  discard(): Promise<void>;
}

/**
 * A results file written under a temp name in the output's folder (`.<name>.<pid>.tmp`, so
 * the rename is atomic) and renamed into place once complete and fsynced: the final name
 * never holds a partial file, and a file already there stays until a run replaces it
 * whole. Rejects at once when the folder is not writable.
 */
export async function openResultFile(path: string): Promise<ResultFile> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  // flush: fsync before close, so the renamed file has its bytes even after a power loss.
  const stream = createWriteStream(temp, { flags: 'wx', flush: true, highWaterMark: 256 * 1024 });
  let failure: Error | undefined;
  stream.on('error', (error) => (failure ??= error));
  const throwIfFailed = () => {
    if (failure) throw failure;
  };
  await once(stream, 'ready');
  let settled = false;
  return {
    temp,
    async write(text) {
      throwIfFailed();
      if (!stream.write(text)) await once(stream, 'drain');
    },
    async commit() {
      throwIfFailed();
      const closed = once(stream, 'close');
      stream.end();
      await closed;
      throwIfFailed();
      await rename(temp, path);
      settled = true;
    },
    async discard() {
      if (settled) return;
      settled = true;
      if (!stream.closed) {
        const closed = once(stream, 'close').catch(() => undefined);
        stream.destroy();
        await closed;
      }
      await rm(temp, { force: true });
    },
  };
}
