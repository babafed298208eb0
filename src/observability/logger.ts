import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import { ConfigError } from '../config.ts';
import type { YogaLogger } from 'graphql-yoga';

export type { Logger };

/** `json`: one JSON object a line; `pretty`: pino-pretty's colored lines; `auto`: pretty on a terminal outside production. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** pino-pretty's entry file, if the package is installed (it is optional: production logs are JSON). */
function prettyTarget(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('pino-pretty');
  } catch {
    return undefined;
  }
}

/**
 * JSON lines on stdout (the server), or on stderr for a command whose stdout is its answer
 * (the CLI); the one place the log format is decided.
 */
export function createLogger(level: string, stream: 'stdout' | 'stderr' = 'stdout', format: LogFormat = 'json'): Logger {
  const base = { level, base: { service: 'onnx-graphql-gateway' } };
  const fd = stream === 'stdout' ? 1 : 2;
  if (format !== 'json') {
    const target = prettyTarget();
    if (format === 'pretty' && !target) throw new ConfigError('LOG_FORMAT=pretty needs the pino-pretty package (npm install --save-dev pino-pretty@13)');
    const terminal = process[stream].isTTY === true && process.env['NODE_ENV'] !== 'production';
    // In a worker thread (pino's transport): the event loop never formats a line.
    if (target && (format === 'pretty' || terminal)) return pino(base, pino.transport({ target, options: { destination: fd, colorize: terminal } }));
  }
  // The server's stdout is asynchronous: a synchronous write blocks the event loop until the
  // reader (a pipe to a supervisor) takes the line, ~200 µs per operation line on a busy
  // machine against ~15 µs asynchronous (`npm run bench -- --only metrics`). Lines queued
  // during a write go out together with the next one (nothing waits for a quiet server), and
  // pino flushes what is left synchronously on process exit (process.exit, uncaught errors).
  // The CLI's stderr stays synchronous: its lines come before its answer.
  return stream === 'stdout' ? pino(base, pino.destination({ fd: 1, sync: false })) : pino(base, pino.destination({ fd: 2, sync: true }));
}

/**
 * Ends the log's stream once every line written so far is out (at most `timeoutMs`), for the
 * last step before `process.exit`. pino's own exit hook flushes synchronously, which can write
 * the lines still queued before the one an asynchronous write has in flight (out of order);
 * and `logger.flush(cb)` calls back at once on a stream without a minimum length.
 */
export function endLog(log: Logger, timeoutMs = 1000): Promise<void> {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { end?: () => void; once?: (event: string, listener: () => void) => void } | undefined;
  return new Promise<void>((resolve) => {
    setTimeout(resolve, timeoutMs).unref();
    if (typeof stream?.end !== 'function' || typeof stream.once !== 'function') return resolve();
    stream.once('close', resolve);
    try {
      stream.end();
    } catch {
      resolve();
    }
  });
}

/** Yoga's logger interface on top of pino. */
export function yogaLogger(log: Logger): YogaLogger {
  const forward =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]) => {
      const [first, ...rest] = args;
      if (first instanceof Error) log[level]({ err: first }, rest.map(String).join(' ') || first.message);
      else log[level](args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    };
  return { debug: forward('debug'), info: forward('info'), warn: forward('warn'), error: forward('error') };
}
