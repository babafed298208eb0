import cliProgress from 'cli-progress';

/** Progress of a batch run, shown on stderr. */
export interface Progress {
  update(processed: number, failed: number): void;
  stop(): void;
}

/**
 * A bar on a terminal; on anything else (a scheduler's log file) one plain line each time
 * another tenth of the rows is done, e.g. `progress: 2000/10000 rows (20%) failed=3`, so a
 * run of few chunks still prints one line per chunk.
 */
export function showProgress(stream: NodeJS.WriteStream, total: number): Progress {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { stream, format: 'batch |{bar}| {percentage}% | {value}/{total} rows | failed {failed} | eta {eta_formatted}', hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { failed: 0 });
    return { update: (processed, failed) => bar.update(processed, { failed }), stop: () => bar.stop() };
  }
  let shownTenths = 0;
  return {
    update(processed, failed) {
      const tenths = total === 0 ? 10 : Math.floor((processed * 10) / total);
      if (tenths <= shownTenths) return;
      shownTenths = tenths;
      stream.write(`progress: ${processed}/${total} rows (${Math.floor((processed * 100) / total)}%) failed=${failed}\n`);
    },
    stop() {},
  };
}
