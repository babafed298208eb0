import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from './helpers/test-database.ts';

describe('npm start', () => {
  it('builds the bundle and serves from it: a predict answers, SIGTERM exits 0', { timeout: 60_000 }, async () => {
    execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'pipe' });
    // SQLite, or PostgreSQL in the postgres project: the bundle carries both Prisma clients.
    const database = await createTestDatabase();
    // The start script's command, as `npm start` runs it after its prestart build.
    const child = spawn(process.execPath, ['dist/gateway/main.mjs'], {
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', DATABASE_URL: database.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const lines: Array<Record<string, any>> = [];
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line);
        lines.push(entry);
        if (entry.msg === 'listening') resolve(entry.url);
      });
      void exited.then((code) => reject(new Error(`exited with ${code}`)));
    });
    while ((await fetch(url.replace('/graphql', '/readyz'))).status !== 200) await new Promise((r) => setTimeout(r, 50));
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation { predict(input: { model: "iris", features: [5.1, 3.5, 1.4, 0.2] }) { label } }' }),
    });
    expect(await res.json()).toEqual({ data: { predict: { label: 'setosa' } } });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lines.at(-1)!.msg).toBe('stopped');
    await database.drop();
  });
});
