import { pino, type Logger } from 'pino';
import type { YogaLogger } from 'graphql-yoga';

export type { Logger };

/**
 * JSON lines on stdout (the server), or on stderr for a command whose stdout is its answer
 * (the CLI); the one place the log format is decided.
 */
export function createLogger(level: string, stream: 'stdout' | 'stderr' = 'stdout'): Logger {
  const base = { level, base: { service: 'onnx-graphql-gateway' } };
  // Synchronous, like pino's default stdout: no line is lost when the CLI exits.
  return stream === 'stdout' ? pino(base) : pino(base, pino.destination({ fd: 2, sync: true }));
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
