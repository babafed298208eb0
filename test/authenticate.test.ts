import { describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '../src/auth/api-keys.ts';
import { createAuthenticator, credentialsFromConnection, type KeyLookup } from '../src/auth/authenticate.ts';
import { ANONYMOUS, ownerOf, parseScopes } from '../src/auth/principal.ts';
import { UnauthenticatedError } from '../src/errors.ts';

/** One stored key, its lookups counted; `revoke` marks it as `keys revoke` does. */
function oneKey() {
  const key = generateApiKey();
  const row = { id: 'k1', name: 'ci', scopes: ['read' as const], hash: hashApiKey(key), revokedAt: null as Date | null, lastUsedAt: null as Date | null };
  const calls = { lookups: 0, touches: 0 };
  const keys: KeyLookup = {
    findByHash: async (hash) => (calls.lookups++, hash === row.hash ? { ...row } : undefined),
    touch: async (_id, at) => {
      calls.touches++;
      row.lastUsedAt = at;
    },
  };
  return { key, row, calls, keys };
}

describe('the authenticator', () => {
  it('looks a key up once per cache window: a revoked key works until the window ends, then never again', async () => {
    const { key, row, calls, keys } = oneKey();
    let now = 1_000_000;
    const auth = createAuthenticator(keys, { mode: 'required', cacheTtlMs: 5000, now: () => now });
    const bearer = { authorization: `Bearer ${key}` };
    expect(await auth.principalFor(bearer)).toMatchObject({ keyId: 'k1', name: 'ci', anonymous: false });
    row.revokedAt = new Date(now);
    now += 5000;
    expect((await auth.principalFor({ apiKey: key })).keyId).toBe('k1');
    expect(calls.lookups).toBe(1);
    now += 1;
    await expect(auth.principalFor(bearer)).rejects.toThrow(UnauthenticatedError);
    expect(calls.lookups).toBe(2);
  });

  it('shares one lookup between concurrent requests with the same key, and caches unknown keys too', async () => {
    const { key, calls, keys } = oneKey();
    const auth = createAuthenticator(keys, { mode: 'required' });
    await Promise.all(Array.from({ length: 20 }, () => auth.principalFor({ apiKey: key })));
    expect(calls.lookups).toBe(1);
    const stranger = generateApiKey();
    for (let i = 0; i < 5; i++) await expect(auth.principalFor({ apiKey: stranger })).rejects.toThrow('invalid or revoked API key');
    expect(calls.lookups).toBe(2);
  });

  it('refuses without a lookup what cannot be a key: none, a non-Bearer Authorization, a wrong shape', async () => {
    const { calls, keys } = oneKey();
    const auth = createAuthenticator(keys, { mode: 'required' });
    await expect(auth.principalFor({})).rejects.toThrow('Unauthenticated: no API key');
    await expect(auth.principalFor({ authorization: 'Basic abc' })).rejects.toThrow('`Bearer <API key>`');
    await expect(auth.principalFor({ apiKey: 'gw_short' })).rejects.toThrow('invalid or revoked API key');
    expect(calls.lookups).toBe(0);
  });

  it('writes lastUsedAt at most once a minute per key', async () => {
    const { key, calls, keys } = oneKey();
    const start = 1_000_000;
    let now = start;
    const auth = createAuthenticator(keys, { mode: 'required', cacheTtlMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++, now += 1001) await auth.principalFor({ apiKey: key });
    expect(calls.lookups).toBe(10);
    expect(calls.touches).toBe(1);
    now = start + 60_000;
    await auth.principalFor({ apiKey: key });
    expect(calls.touches).toBe(2);
  });

  it('with AUTH_MODE=off, reads no key and answers ANONYMOUS, which sees every key\'s objects', async () => {
    const { calls, keys } = oneKey();
    const auth = createAuthenticator(keys, { mode: 'off' });
    expect(await auth.principalFor({ authorization: 'garbage' })).toBe(ANONYMOUS);
    expect(calls.lookups).toBe(0);
    expect(ownerOf(ANONYMOUS)).toBeUndefined();
    expect(ownerOf({ keyId: 'k', scopes: new Set(['read']), anonymous: false })).toBe('k');
    expect(ownerOf({ keyId: 'k', scopes: new Set(['admin']), anonymous: false })).toBeUndefined();
  });

  it('takes WebSocket credentials from connection_init, else from the upgrade headers', () => {
    expect(credentialsFromConnection({ authorization: 'Bearer x' }, { 'x-api-key': 'y' })).toEqual({ authorization: 'Bearer x', apiKey: undefined });
    expect(credentialsFromConnection({ apiKey: 'z' }, {})).toEqual({ authorization: undefined, apiKey: 'z' });
    expect(credentialsFromConnection(undefined, { 'x-api-key': 'y' })).toEqual({ authorization: undefined, apiKey: 'y' });
  });

  it('parses scopes, naming the unknown ones', () => {
    expect(parseScopes('admin, predict,predict')).toEqual(['predict', 'admin']);
    expect(() => parseScopes('read,write')).toThrow('Expected scopes from predict, read, admin, got `write`');
    expect(() => parseScopes(' , ')).toThrow('at least one scope');
  });
});
