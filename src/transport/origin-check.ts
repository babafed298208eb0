import type { IncomingHttpHeaders } from 'node:http';

/** Origins allowed besides the gateway's own: exact origins (`https://app.example.com`), or `*` for any. */
export type AllowedOrigins = readonly string[] | '*';

/**
 * Whether a browser page at the request's `Origin` may open a WebSocket here. Browsers do
 * not apply CORS to WebSockets: without this check a page on any site can connect to a
 * gateway its visitor reaches (on their machine, or inside their network) and run `predict`
 * or `generate`. Allowed: no `Origin` header (not a browser: graphql-ws in Node, curl), an
 * origin whose host:port is the request's `Host` (the gateway's own pages, GraphiQL), or one
 * listed in `allowed`.
 */
export function originAllowed(headers: IncomingHttpHeaders, allowed: AllowedOrigins): boolean {
  const origin = headers.origin;
  if (origin === undefined) return true;
  if (allowed === '*') return true;
  const normalized = origin.trim().toLowerCase().replace(/\/$/, '');
  if (allowed.includes(normalized)) return true;
  let host: string;
  try {
    host = new URL(normalized).host;
  } catch {
    return false; // `null` (sandboxed frames, file: pages) or garbage
  }
  return host !== '' && host === headers.host?.trim().toLowerCase();
}

/** Parses ALLOWED_ORIGINS (comma separated); throws a one-line Error naming a bad entry. */
export function parseAllowedOrigins(value: string): AllowedOrigins {
  const entries = value.split(',').map((e) => e.trim().toLowerCase().replace(/\/$/, '')).filter(Boolean);
  if (entries.includes('*')) return '*';
  for (const entry of entries) {
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (!url || url.origin !== entry) throw new Error(`expected origins such as https://app.example.com (scheme, host and port only), or *, got \`${entry}\``);
  }
  return entries;
}

/**
 * Yoga's CORS for ALLOWED_ORIGINS, so a browser page elsewhere gets the same answer over HTTP
 * as over WebSocket: none besides the gateway's own pages by default (Yoga's own default
 * grants every origin, credentials included), the listed ones, or any with `*`. A refused
 * origin gets no CORS header at all (Yoga would answer `Access-Control-Allow-Origin: null`,
 * which grants the opaque origin of sandboxed frames). Never with credentials: API keys
 * travel in headers, not cookies.
 */
export function corsOptions(allowed: AllowedOrigins) {
  const granted = (origin: string) => ({ origin, credentials: false, exposedHeaders: ['x-request-id', 'retry-after'] });
  return (request: Request) => {
    const origin = request.headers.get('origin')?.trim().toLowerCase().replace(/\/$/, '');
    if (!origin) return false as const;
    if (allowed === '*') return granted('*');
    return allowed.includes(origin) ? granted(origin) : (false as const);
  };
}
