import { generateApiKey, hashApiKey } from '../auth/api-keys.ts';
import { parseScopes } from '../auth/principal.ts';
import { loadConfig } from '../config.ts';
import { newId } from '../serving/ids.ts';
import { createApiKeyRepository, type ApiKeyRecord } from '../store/api-key-repository.ts';
import { openDatabase } from '../store/database.ts';
import { UsageError, type Command, type OptionValues } from './command.ts';

/**
 * `onnx-gateway keys create|list|revoke`: the API keys of the database DATABASE_URL names
 * (SQLite or PostgreSQL, migrated first, as the server does). Only a key's SHA-256 is
 * stored: `create` prints the key once, and nothing can print it again.
 *
 * stdout is JSON Lines: `create` and `revoke` one line (the key's record; `create` adds
 * `key`), `list` one line per key, oldest first. Never the hash.
 *
 * Exit codes: 0 done; 1 failed (no key with that id, the database unreachable), with a
 * `keys failed: …` line on stderr; 2 usage error, nothing done.
 */

const USAGE = `Usage: onnx-gateway keys create --name NAME --scopes SCOPES
       onnx-gateway keys list
       onnx-gateway keys revoke ID

API keys for AUTH_MODE=required, in the database DATABASE_URL names.

  create   makes a key and prints it once, with its id: {"id", "name", "scopes", "createdAt", "key"}
           --name NAME        what the key is for (1 to 100 characters)
           --scopes SCOPES    comma-separated, from predict, read, admin (admin includes the others)
  list     prints every key, one JSON line each (id, name, scopes, createdAt, revokedAt, lastUsedAt)
  revoke   refuses the key from now on (servers notice within 5 seconds); prints its line
`;

const view = (key: ApiKeyRecord) => ({
  id: key.id,
  name: key.name,
  scopes: key.scopes,
  createdAt: key.createdAt.toISOString(),
  revokedAt: key.revokedAt?.toISOString() ?? null,
  lastUsedAt: key.lastUsedAt?.toISOString() ?? null,
});

const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

/** What to do, checked before the database is opened. */
type Action = { kind: 'create'; name: string; scopes: ReturnType<typeof parseScopes> } | { kind: 'list' } | { kind: 'revoke'; id: string };

function actionOf(values: OptionValues, positionals: readonly string[]): Action {
  const [sub, ...rest] = positionals;
  const forCreateOnly = values['name'] !== undefined || values['scopes'] !== undefined;
  if (sub === 'create') {
    if (rest.length > 0) throw new UsageError(`unexpected argument \`${rest[0]}\``);
    const name = typeof values['name'] === 'string' ? values['name'].trim() : '';
    if (name.length === 0 || name.length > 100) throw new UsageError('--name: expected 1 to 100 characters');
    if (typeof values['scopes'] !== 'string') throw new UsageError('--scopes is required');
    try {
      return { kind: 'create', name, scopes: parseScopes(values['scopes']) };
    } catch (error) {
      throw new UsageError(`--scopes: ${(error as Error).message}`);
    }
  }
  if (forCreateOnly) throw new UsageError('--name and --scopes belong to `keys create`');
  if (sub === 'list') {
    if (rest.length > 0) throw new UsageError(`unexpected argument \`${rest[0]}\``);
    return { kind: 'list' };
  }
  if (sub === 'revoke') {
    if (rest.length !== 1) throw new UsageError('`keys revoke` takes one key id');
    return { kind: 'revoke', id: rest[0]! };
  }
  throw new UsageError(sub === undefined ? 'expected create, list or revoke' : `unknown keys command \`${sub}\``);
}

export const keysCommand: Command = {
  name: 'keys',
  summary: 'create, list and revoke API keys',
  usage: USAGE,
  options: { name: { type: 'string' }, scopes: { type: 'string' } },
  positionals: true,
  async run(values, positionals) {
    const action = actionOf(values, positionals);
    let db;
    try {
      db = await openDatabase(loadConfig(process.env, '.env').databaseUrl);
      const keys = createApiKeyRepository(db);
      if (action.kind === 'create') {
        const key = generateApiKey();
        const record = await keys.create({ id: newId(), name: action.name, scopes: action.scopes, hash: hashApiKey(key), createdAt: new Date() });
        line({ ...view(record), key });
      } else if (action.kind === 'list') {
        for (const record of await keys.list()) line(view(record));
      } else {
        const record = await keys.revoke(action.id, new Date());
        if (!record) throw new Error(`no API key with id \`${action.id}\``);
        line(view(record));
      }
      return 0;
    } catch (error) {
      process.stderr.write(`keys failed: ${(error as Error).message}\n`);
      return 1;
    } finally {
      await db?.$disconnect();
    }
  },
};
