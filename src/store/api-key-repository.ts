import { SCOPES, type Scope } from '../auth/principal.ts';
import type { Database } from './database.ts';

/** An API key as stored: never the key, only its hash (which this record leaves out too). */
export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export interface NewApiKey {
  id: string;
  name: string;
  scopes: readonly Scope[];
  /** SHA-256 of the key (auth/api-keys.ts). */
  hash: string;
  createdAt: Date;
}

export type ApiKeyRepository = ReturnType<typeof createApiKeyRepository>;

const toRecord = (row: { id: string; name: string; scopes: string; createdAt: Date; revokedAt: Date | null; lastUsedAt: Date | null }): ApiKeyRecord => ({
  id: row.id,
  name: row.name,
  // Stored comma-separated; anything unknown (written by a newer version) grants nothing.
  scopes: SCOPES.filter((s) => row.scopes.split(',').includes(s)),
  createdAt: row.createdAt,
  revokedAt: row.revokedAt,
  lastUsedAt: row.lastUsedAt,
});

const withoutHash = { id: true, name: true, scopes: true, createdAt: true, revokedAt: true, lastUsedAt: true } as const;

/** API keys through Prisma, the same on SQLite and PostgreSQL. */
export function createApiKeyRepository(db: Database) {
  return {
    async create(key: NewApiKey): Promise<ApiKeyRecord> {
      return toRecord(await db.apiKey.create({ data: { ...key, scopes: key.scopes.join(',') }, select: withoutHash }));
    },
    /** Oldest first, revoked ones included. */
    async list(): Promise<ApiKeyRecord[]> {
      return (await db.apiKey.findMany({ select: withoutHash, orderBy: { id: 'asc' } })).map(toRecord);
    },
    /** The key with this hash, revoked or not: one lookup on the unique hash index. */
    async findByHash(hash: string): Promise<ApiKeyRecord | undefined> {
      const row = await db.apiKey.findUnique({ where: { hash }, select: withoutHash });
      return row ? toRecord(row) : undefined;
    },
    /** Marks the key revoked at `at` (a key revoked before keeps its first time); undefined for an unknown id. */
    async revoke(id: string, at: Date): Promise<ApiKeyRecord | undefined> {
      await db.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: at } });
      const row = await db.apiKey.findUnique({ where: { id }, select: withoutHash });
      return row ? toRecord(row) : undefined;
    },
    async touch(id: string, at: Date): Promise<void> {
      await db.apiKey.update({ where: { id }, data: { lastUsedAt: at } });
    },
  };
}
