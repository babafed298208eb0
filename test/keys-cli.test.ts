import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from './helpers/process.ts';
import { createTestDatabase, type TestDatabase } from './helpers/test-database.ts';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run gateway -- keys …` (src/cli/main.ts) in a child process on `databaseUrl`. */
function keys(databaseUrl: string, ...args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'keys', ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const jsonLines = (text: string) => text.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));

const MODELS = '{ models { name } }';

// Child processes (tsx) start slowly on a loaded 2-core machine.
describe('keys CLI with a real gateway process', { timeout: 180_000 }, () => {
  let database: TestDatabase;
  let gateway: GatewayProcess | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    gateway?.child.kill('SIGTERM');
    await gateway?.exited;
    await database.drop();
  });

  const ask = (key?: string) =>
    fetch(`${gateway!.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query: MODELS }),
    });

  it('creates keys (printed once, one JSON line), lists them without hash or key, revokes one; the server takes and refuses them', async () => {
    const created = await keys(database.url, 'create', '--name', 'nightly scoring', '--scopes', 'read,predict');
    expect(created.code).toBe(0);
    const [first] = jsonLines(created.stdout);
    expect(jsonLines(created.stdout)).toHaveLength(1);
    expect(first).toEqual({ id: expect.any(String), name: 'nightly scoring', scopes: ['predict', 'read'], createdAt: expect.any(String), revokedAt: null, lastUsedAt: null, key: expect.stringMatching(/^gw_[A-Za-z0-9_-]{43}$/) });
    const second = jsonLines((await keys(database.url, 'create', '--name', 'doomed', '--scopes', 'admin')).stdout)[0];

    const listed = await keys(database.url, 'list');
    expect(listed.code).toBe(0);
    expect(jsonLines(listed.stdout).map((k) => [k.id, k.name, k.scopes, k.revokedAt])).toEqual([
      [first.id, 'nightly scoring', ['predict', 'read'], null],
      [second.id, 'doomed', ['admin'], null],
    ]);
    expect(listed.stdout).not.toContain(first.key);
    expect(listed.stdout).not.toMatch(/hash|[0-9a-f]{64}/);
    // Only the hash is stored.
    const stored = JSON.stringify(await database.query('SELECT * FROM "ApiKey"'));
    expect(stored).not.toContain(first.key);

    const revoked = await keys(database.url, 'revoke', second.id);
    expect(revoked.code).toBe(0);
    expect(jsonLines(revoked.stdout)[0]).toMatchObject({ id: second.id, revokedAt: expect.any(String) });
    expect(jsonLines((await keys(database.url, 'list')).stdout)[1].revokedAt).toBe(jsonLines(revoked.stdout)[0].revokedAt);

    gateway = await startGatewayProcess({ DATABASE_URL: database.url, AUTH_MODE: 'required' });
    expect(gateway.lines.some((l) => l.level === 40 && /AUTH_MODE=off/.test(l.msg))).toBe(false);
    expect((await ask(first.key)).status).toBe(200);
    expect((await ask(second.key)).status).toBe(401);
    expect((await ask()).status).toBe(401);
  });

  it('exits 1 with a `keys failed:` line for an unknown id, and 2 for usage errors, printing nothing on stdout', async () => {
    const unknown = await keys(database.url, 'revoke', 'no-such-id');
    expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'keys failed: no API key with id `no-such-id`\n' });
    for (const args of [['create', '--name', 'x', '--scopes', 'read,write'], ['revoke'], ['list', '--name', 'x']]) {
      const run = await keys(database.url, ...args);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(run.stderr).toMatch(/^error: /);
    }
  });
});

describe('AUTH_MODE=off at start', { timeout: 120_000 }, () => {
  it('logs a warning line that no key is asked for', async () => {
    const open = await startGatewayProcess({});
    try {
      const warning = open.lines.find((l) => l.level === 40 && l.authMode === 'off');
      expect(warning?.msg).toMatch(/^AUTH_MODE=off: no API key is asked for/);
    } finally {
      open.child.kill('SIGTERM');
      await open.exited;
    }
  });
});
