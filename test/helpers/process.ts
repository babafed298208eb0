import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createTestDatabase, testDatabaseAt, type TestDatabase } from './test-database.ts';

export interface GatewayProcess {
  child: ChildProcess;
  url: string;
  /** DATABASE_URL of its database: pass it to a second process to restart on the same history. */
  databaseUrl: string;
  /** SQL on that database through a connection of the test's own (TestDatabase.query). */
  query: TestDatabase['query'];
  lines: Array<Record<string, any>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `src/main.ts` in a child process, as `npm start` runs it, on an ephemeral port. */
export function spawnGateway(env: Record<string, string> = {}): { child: ChildProcess; stderr: () => string; exited: GatewayProcess['exited'] } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    // 'close', not 'exit': it comes after the child's stdout and stderr are read to the end, so its last log line is in.
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, stderr: () => stderr, exited };
}

/**
 * Spawns the gateway and resolves once it listens: on `env.DATABASE_URL` when given, else on
 * a fresh database (test-database.ts; a PostgreSQL one is dropped at the end of the run).
 */
export async function startGatewayProcess(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const database = env.DATABASE_URL ? testDatabaseAt(env.DATABASE_URL) : await createTestDatabase();
  const { child, exited, stderr } = spawnGateway({ ...env, DATABASE_URL: database.url });
  const lines: Array<Record<string, any>> = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line);
      lines.push(entry);
      if (entry.msg === 'listening') resolve(`http://127.0.0.1:${entry.port}`);
    });
    void exited.then(({ code }) => reject(new Error(`gateway exited with ${code}: ${stderr()}`)));
  });
  return { child, url, databaseUrl: database.url, query: database.query, lines, exited };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
