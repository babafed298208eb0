import { generateApiKey, hashApiKey } from '../../src/auth/api-keys.ts';
import type { Scope } from '../../src/auth/principal.ts';
import { newId } from '../../src/serving/ids.ts';
import { createApiKeyRepository } from '../../src/store/api-key-repository.ts';
import type { Database } from '../../src/store/database.ts';

/** A key stored in the gateway's database, as `keys create` stores it: its id, the key itself, and the header that sends it. */
export async function createTestKey(db: Database, name: string, scopes: Scope[]) {
  const key = generateApiKey();
  const record = await createApiKeyRepository(db).create({ id: newId(), name, scopes, hash: hashApiKey(key), createdAt: new Date() });
  return { id: record.id, key, headers: { authorization: `Bearer ${key}` } };
}
