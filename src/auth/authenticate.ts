import { LRUCache } from 'lru-cache';
import { UnauthenticatedError } from '../errors.ts';
import { hashApiKey, looksLikeApiKey } from './api-keys.ts';
import { ANONYMOUS, type Principal, type Scope } from './principal.ts';

export type AuthMode = 'off' | 'required';

/** The stored keys, as authentication needs them (store/api-key-repository.ts implements it). */
export interface KeyLookup {
  findByHash(hash: string): Promise<{ id: string; name: string; scopes: readonly Scope[]; revokedAt: Date | null; lastUsedAt: Date | null } | undefined>;
  touch(id: string, at: Date): Promise<void>;
}

/** What a request presented: the `Authorization` header (or connection_init field) and the `x-api-key` one (or `apiKey`). */
export interface Credentials {
  authorization?: string | null;
  apiKey?: string | null;
}

export interface AuthenticatorOptions {
  mode: AuthMode;
  /**
   * How long a looked-up key (valid or not) is trusted without asking the database again:
   * a revoked key stops working within this window. @default 5000
   */
  cacheTtlMs?: number;
  /** Keys (hashes) held in the cache at most; the least recently used go first. @default 10000 */
  cacheSize?: number;
  /** `lastUsedAt` is written at most this often per key and process. @default 60000 */
  lastUsedEveryMs?: number;
  /** Told when writing `lastUsedAt` fails (it never fails a request). */
  onTouchError?: (error: unknown) => void;
  now?: () => number;
}

const NO_KEY = 'no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`';
const BAD_KEY = 'invalid or revoked API key';

/** The key a request carries; `Authorization` wins over `x-api-key`. Undefined when there is none. */
function keyOf(credentials: Credentials): string | undefined {
  const authorization = credentials.authorization?.trim();
  if (authorization) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match) throw new UnauthenticatedError('the Authorization header must be `Bearer <API key>`');
    return match[1];
  }
  return credentials.apiKey?.trim() || undefined;
}

/**
 * Turns what a request presented into its Principal. AUTH_MODE=off: always ANONYMOUS (keys
 * are not even read, so everything behaves as before keys existed). `required`: a missing,
 * malformed, unknown or revoked key throws UnauthenticatedError (the same message for the
 * last three, so a caller learns nothing about which keys exist).
 *
 * Each key's lookup (one indexed SELECT by SHA-256) is cached for `cacheTtlMs`, and
 * concurrent requests with one key share a single lookup; unknown keys are cached too, so
 * a flood of bad keys costs the database one query per distinct key and window.
 */
export function createAuthenticator(keys: KeyLookup, options: AuthenticatorOptions) {
  const now = options.now ?? Date.now;
  const lastUsedEveryMs = options.lastUsedEveryMs ?? 60_000;
  // ttlResolution 0: read the clock at every lookup (lru-cache otherwise reuses a reading for 1 ms of real time, which an injected clock cannot advance).
  const cache = new LRUCache<string, Promise<Principal | null>>({ max: options.cacheSize ?? 10_000, ttl: options.cacheTtlMs ?? 5000, ttlResolution: 0, perf: { now } });
  /** When this process last wrote each key's lastUsedAt. */
  const touched = new LRUCache<string, number>({ max: options.cacheSize ?? 10_000 });

  async function lookUp(hash: string): Promise<Principal | null> {
    const key = await keys.findByHash(hash);
    if (!key || key.revokedAt !== null) return null;
    const at = now();
    const last = touched.get(key.id) ?? key.lastUsedAt?.getTime() ?? -Infinity;
    if (at - last >= lastUsedEveryMs) {
      touched.set(key.id, at);
      keys.touch(key.id, new Date(at)).catch((error: unknown) => options.onTouchError?.(error));
    }
    return Object.freeze({ keyId: key.id, name: key.name, scopes: new Set(key.scopes), anonymous: false });
  }

  return {
    mode: options.mode,
    async principalFor(credentials: Credentials): Promise<Principal> {
      if (options.mode === 'off') return ANONYMOUS;
      const key = keyOf(credentials);
      if (key === undefined) throw new UnauthenticatedError(NO_KEY);
      if (!looksLikeApiKey(key)) throw new UnauthenticatedError(BAD_KEY);
      const hash = hashApiKey(key);
      let pending = cache.get(hash);
      if (!pending) {
        pending = lookUp(hash);
        cache.set(hash, pending);
        // A failed lookup (database down) is not remembered: the next request asks again.
        pending.catch(() => cache.delete(hash));
      }
      const principal = await pending;
      if (!principal) throw new UnauthenticatedError(BAD_KEY);
      return principal;
    },
  };
}

export type Authenticator = ReturnType<typeof createAuthenticator>;

/** The credentials of an HTTP request (and of SSE, which is HTTP). */
export const credentialsFromHeaders = (headers: { get(name: string): string | null }): Credentials => ({
  authorization: headers.get('authorization'),
  apiKey: headers.get('x-api-key'),
});

/** The same, from a Node request (before Yoga has made a fetch Request of it). */
export const credentialsFromNodeHeaders = (headers: Record<string, string | string[] | undefined>): Credentials =>
  credentialsFromHeaders({ get: (name) => [headers[name]].flat()[0] ?? null });

/**
 * The credentials of a WebSocket connection: graphql-ws's `connection_init` payload
 * (`{ authorization: 'Bearer …' }` or `{ apiKey }`; browsers cannot set headers on a
 * WebSocket), else the upgrade request's headers (for clients that can).
 */
export function credentialsFromConnection(params: Readonly<Record<string, unknown>> | undefined, upgradeHeaders: Record<string, string | string[] | undefined>): Credentials {
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const authorization = text(params?.['authorization']) ?? text(params?.['Authorization']);
  const apiKey = text(params?.['apiKey']) ?? text(params?.['x-api-key']);
  if (authorization !== undefined || apiKey !== undefined) return { authorization, apiKey };
  return { authorization: text(upgradeHeaders['authorization']), apiKey: text(upgradeHeaders['x-api-key']) };
}
