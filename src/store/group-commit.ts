/**
 * Group commit: rows handed in while a commit is in flight are written together by
 * the next `writeMany` call, one transaction. Every caller's
 * promise settles only after its row is committed. If a group fails, its rows are
 * written one by one, so one bad row fails only its own caller.
 */
export function createGroupCommit<T>(
  writeMany: (rows: T[]) => Promise<void>,
  writeOne: (row: T) => Promise<void>,
  options: {
    /**
     * How long the first row of an idle writer waits for others before its commit, in ms. For
     * rows nobody waits on (shadow results): fewer, larger commits. @default 0 (until this round of I/O ends)
     */
    delayMs?: number;
  } = {},
) {
  const delayMs = options.delayMs ?? 0;
  let pending: Array<{ row: T; resolve: () => void; reject: (error: unknown) => void }> = [];
  let flushing = false;
  /** Sizes of the groups written, for tests and stats. */
  const stats = { groups: 0, rows: 0 };

  async function flush(): Promise<void> {
    flushing = true;
    while (pending.length > 0) {
      const group = pending;
      pending = [];
      try {
        await writeMany(group.map((p) => p.row));
        stats.groups++;
        stats.rows += group.length;
        for (const p of group) p.resolve();
      } catch {
        await Promise.all(
          group.map((p) =>
            writeOne(p.row).then(
              () => {
                stats.groups++;
                stats.rows++;
                p.resolve();
              },
              p.reject,
            ),
          ),
        );
      }
    }
    flushing = false;
  }

  return {
    stats,
    write(row: T): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        pending.push({ row, resolve, reject });
        // Idle: commit once the requests already read from the sockets have had their turn
        // (setImmediate runs right after this round of I/O: a lone request waits for nothing).
        // Committing at once instead made each row of a path without a batcher (response
        // cache hits) its own transaction when the writer is synchronous (SQLite blocks the
        // event loop while it commits, so nothing could join). Busy: rows queue up and the
        // next group takes all of them when the commit in flight ends.
        if (!flushing) {
          flushing = true;
          if (delayMs > 0) setTimeout(() => void flush(), delayMs);
          else setImmediate(() => void flush());
        }
      });
    },
  };
}
