import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const ROUTE = /^\/metrics(?:\?.*)?$/;

/** A scrape's answer: Prometheus text exposition and its content type. */
export interface Scrape {
  contentType: string;
  text: string;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * GET /metrics: Prometheus text from `scrape`. With `token`, only a request carrying
 * `Authorization: Bearer <token>` gets it; others get 401 with `WWW-Authenticate: Bearer`
 * (compared in constant time, on digests so lengths leak nothing either). A scrape that
 * fails (a cluster worker that did not answer in time) is 503. Returns false for any other
 * URL, so the caller hands the request on.
 */
export function metricsEndpoint(deps: { scrape: () => Promise<Scrape>; token: string | undefined }) {
  const expected = deps.token === undefined ? undefined : digest(`Bearer ${deps.token}`);
  const authorized = (req: IncomingMessage) => expected === undefined || timingSafeEqual(digest(req.headers.authorization ?? ''), expected);

  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!ROUTE.test(req.url ?? '') || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    if (!authorized(req)) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer realm="metrics"' });
      res.end('401 Unauthorized: /metrics needs Authorization: Bearer <METRICS_TOKEN>\n');
      return true;
    }
    deps.scrape().then(
      ({ contentType, text }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`503 Service Unavailable: metrics could not be collected (${error instanceof Error ? error.message : String(error)})\n`);
      },
    );
    return true;
  };
}
