/**
 * Who is calling, as the GraphQL context carries it (`context.principal`), and what that
 * lets it see. Pure: no database, no transport.
 */

/** What an API key may do. `admin` includes the other two and sees every key's objects. */
export const SCOPES = ['predict', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  /** The API key's id; null when no key was used (AUTH_MODE=off). Logged as `keyId`, never the key. */
  keyId: string | null;
  /** The key's name (from `keys create --name`). */
  name?: string;
  scopes: ReadonlySet<Scope>;
  /** No key: AUTH_MODE=off, where everything is allowed and every object visible, as before keys existed. */
  anonymous: boolean;
}

/** AUTH_MODE=off: every scope, every object; what is written carries no key (apiKeyId null). */
export const ANONYMOUS: Principal = Object.freeze({ keyId: null, scopes: new Set<Scope>(SCOPES), anonymous: true });

/** Whether the principal has `scope` (admin has them all). */
export const hasScope = (principal: Principal, scope: Scope): boolean => principal.scopes.has(scope) || principal.scopes.has('admin');

/**
 * Whose objects the principal sees (OWASP API1): undefined for every key's (admin, or no
 * auth), else only its own key's. Readers pass it down as a filter, so another key's id
 * reads exactly like an unknown one.
 */
export function ownerOf(principal: Principal): string | undefined {
  if (principal.anonymous || principal.scopes.has('admin') || principal.keyId === null) return undefined;
  return principal.keyId;
}

/** Whether an object written by `apiKeyId` is visible to a caller whose `ownerOf` is `owner`. */
export const isVisibleTo = (owner: string | undefined, object: { apiKeyId?: string | null }): boolean =>
  owner === undefined || object.apiKeyId === owner;

/**
 * Parses `predict,read,admin`; throws with a message naming the bad entries. Order and
 * repeats do not matter; at least one scope is needed.
 */
export function parseScopes(text: string): Scope[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const unknown = parts.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (unknown.length > 0) throw new Error(`Expected scopes from ${SCOPES.join(', ')}, got ${unknown.map((s) => `\`${s}\``).join(', ')}`);
  if (parts.length === 0) throw new Error(`Expected at least one scope from ${SCOPES.join(', ')}`);
  return SCOPES.filter((s) => parts.includes(s));
}
