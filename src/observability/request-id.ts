import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * The request id: the client's `x-request-id` when it sends a sane one, else a new UUID.
 * It is echoed in the response header, put on masked errors and on the log line of
 * every unexpected error.
 */
export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}
