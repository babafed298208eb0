/**
 * Child processes for the bench: start a server, learn its port from its log, wait until it is
 * ready, sample its memory, stop it with SIGTERM. Every child started here is registered so that
 * `killAllChildren()` (and the process 'exit' hook installed by `installCleanup()`) can SIGKILL
 * whatever is still running when the bench fails, is interrupted or forgets one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  name: string;
  pid: number;
  /** http://127.0.0.1:<port>, taken from the child's `"msg":"listening"` log line. */
  url: string;
  /** Every stdout line but the per-operation ones, parsed when it is JSON (`{ text }` otherwise). */
  lines: Array<Record<string, unknown>>;
  stderr(): string;
  exited: Promise<ExitStatus>;
}

export interface StartOptions {
  name: string;
  /** Script path relative to `cwd`, run as `node --import tsx <script>` (what `npm start` does). */
  script: string;
  cwd: string;
  env: Record<string, string>;
  /** When set, poll GET <url><readyPath> until it answers 200. */
  readyPath?: string;
  timeoutMs?: number;
  /** Node flags before the script. @default ['--import', 'tsx'] */
  nodeArgs?: string[];
  /** Run the server (all its threads) on these CPUs only (`taskset -a -c`), e.g. '0'. @default any CPU */
  cpus?: string;
}

const running = new Map<number, ChildProcess>();

/** SIGKILLs every child still registered. Synchronous, so it is safe in an 'exit' handler. */
export function killAllChildren(): void {
  for (const [pid, child] of running) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  running.clear();
}

/** Kills children on normal exit, on uncaught errors and on Ctrl-C / SIGTERM of the bench. */
export function installCleanup(): void {
  process.on('exit', killAllChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(`\nbench: ${signal}, killing child processes`);
      killAllChildren();
      process.exit(130);
    });
  }
}

/** Restricts every thread of `pid` to `cpus` (a taskset list such as '0' or '0,1'). */
export function pinToCpus(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/**
 * Spawns `node --import tsx <script>` and resolves once it has logged `"msg":"listening"` with a
 * `port` (and, with `readyPath`, answers 200 there). Rejects, after killing the child, on exit or
 * timeout.
 */
export async function startServer(options: StartOptions): Promise<ServerProcess> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const child = spawn(process.execPath, [...(options.nodeArgs ?? ['--import', 'tsx']), options.script], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${options.name}: spawn failed`);
  const pid = child.pid;
  running.set(pid, child);
  // Threads started later (libuv, ONNX Runtime) inherit the affinity set here.
  if (options.cpus !== undefined) pinToCpus(pid, options.cpus);
  const exited = new Promise<ExitStatus>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(pid);
      resolve({ code, signal });
    }),
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += String(chunk)));
  const lines: Array<Record<string, unknown>> = [];

  try {
    // stdout is read to the end (not just to the listening line) so the pipe never fills up.
    const port = await withTimeout(
      new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          // One a request under load: neither parsed nor kept (this process shares the cores with the server's).
          if (line.includes('"msg":"graphql operation"')) return;
          const entry = parseLine(line);
          lines.push(entry);
          if (entry.msg === 'listening' && typeof entry.port === 'number') resolve(entry.port);
        });
        void exited.then((status) =>
          reject(new Error(`${options.name} exited before listening (${describeExit(status)}): ${stderr.trim()}`)),
        );
      }),
      timeoutMs,
      `${options.name} did not log "listening" within ${timeoutMs} ms`,
    );
    const url = `http://127.0.0.1:${port}`;
    if (options.readyPath) await waitForStatus(`${url}${options.readyPath}`, 200, timeoutMs, exited);
    return { name: options.name, pid, url, lines, stderr: () => stderr, exited };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** SIGTERM, then wait for the exit; SIGKILL after `graceMs` (the result then says `killed`). */
export async function stopServer(server: ServerProcess, graceMs = 30_000): Promise<ExitStatus & { killed: boolean }> {
  try {
    process.kill(server.pid, 'SIGTERM');
  } catch {
    // already exited: `exited` resolves with how
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const first = await Promise.race([server.exited, late]);
  clearTimeout(timer);
  if (first !== 'late') return { ...first, killed: false };
  try {
    process.kill(server.pid, 'SIGKILL');
  } catch {
    // raced with a normal exit
  }
  return { ...(await server.exited), killed: true };
}

export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/** VmRSS and VmHWM of a live process in kB (Linux /proc), or undefined once it is gone. */
export function readMemoryKb(pid: number): { rssKb: number; hwmKb: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/**
 * Samples VmRSS every `intervalMs`. `finish()` reads VmHWM once more (call it just before
 * SIGTERM) and returns the larger of the highest sample and the kernel's high-water mark, in MB
 * (1 MB = 1024 kB, the /proc unit).
 */
export function sampleRss(pid: number, intervalMs = 200): { finish(): number } {
  let peakKb = 0;
  const sample = () => {
    const memory = readMemoryKb(pid);
    if (memory) peakKb = Math.max(peakKb, memory.rssKb);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    finish() {
      clearInterval(timer);
      const memory = readMemoryKb(pid);
      if (memory) peakKb = Math.max(peakKb, memory.rssKb, memory.hwmKb);
      return Math.round((peakKb / 1024) * 10) / 10;
    },
  };
}

async function waitForStatus(url: string, status: number, timeoutMs: number, exited: Promise<ExitStatus>): Promise<void> {
  let gone: ExitStatus | undefined;
  void exited.then((s) => (gone = s));
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (gone) throw new Error(`server exited while waiting for ${url} (${describeExit(gone)})`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === status) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})`);
}

function parseLine(line: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(line);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { text: line };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The gateway exactly as `npm start` runs it: builds the bundle (the `prestart` step), then
 * splits the `start` script (`node <flags> <script>`) into node flags and the script.
 */
export function startCommand(repoRoot: string): { nodeArgs: string[]; script: string } {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  const { scripts } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const start = scripts.start;
  const words = start.trim().split(/\s+/);
  if (words[0] !== 'node' || words.length < 2) throw new Error(`unexpected start script: ${start}`);
  return { nodeArgs: words.slice(1, -1), script: words.at(-1)! };
}
