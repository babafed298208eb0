import { parseArgs } from 'node:util';
import { batchCommand } from './batch.ts';
import { USAGE_EXIT_CODE, UsageError, type Command } from './command.ts';
import { keysCommand } from './keys.ts';

/**
 * `onnx-gateway <command> [options]` (`npm run gateway -- <command> ...`): the gateway's
 * work that runs without a server. A command is a `Command` (command.ts) added to the list
 * below. `--help` prints usage on stdout; an unknown command or option prints it on stderr
 * and exits 2.
 */
const COMMANDS: readonly Command[] = [batchCommand, keysCommand];

const OVERVIEW = `Usage: onnx-gateway <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(10)}${c.summary}`).join('\n')}

Run \`onnx-gateway <command> --help\` for its options.
`;

function usageError(message: string, usage: string): number {
  process.stderr.write(`error: ${message}\n\n${usage}`);
  return USAGE_EXIT_CODE;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) return usageError('no command given', OVERVIEW);
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(OVERVIEW);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) return usageError(`unknown command \`${name}\``, OVERVIEW);
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: command.positionals ?? false }));
  } catch (error) {
    return usageError((error as Error).message, command.usage);
  }
  if (values.help) {
    process.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(values, positionals);
  } catch (error) {
    if (error instanceof UsageError) return usageError(error.message, command.usage);
    throw error;
  }
}

const code = await main(process.argv.slice(2));
// Exit once stdout is flushed (it is asynchronous on some platforms' pipes): nothing a
// command left open (a timer, a native thread pool) may keep a scheduler's task running.
process.stdout.write('', () => process.exit(code));
