import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface RequestScope {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestScope>();

/**
 * The request id: the client's `x-request-id` when it sends a sane one, else a new UUID.
 * It is echoed in the response header, put on masked errors and on every log line
 * about the request.
 */
export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

export function runInRequestScope<T>(scope: RequestScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The current request's scope; undefined outside an HTTP request (e.g. yoga.fetch in a test). */
export function currentRequestScope(): RequestScope | undefined {
  return storage.getStore();
}
