import { ocitoolVersion } from '../util/version.js';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { OciToolError } from '../util/errors.js';
import { EXIT_INTERRUPTED, catchInterrupts, lineStart } from './interrupt.js';
import { commandHandler, type Command, type GlobalFlags } from './command.js';
import { jsonLine } from './output.js';
import { setRawArgv } from './raw-argv.js';
import build from './commands/build.js';
import { convertCommand, copyCommand, pullCommand, pushCommand } from './commands/copy.js';
import gc from './commands/gc.js';
import indexCmd from './commands/index-cmd.js';
import init from './commands/init.js';
import inspect from './commands/inspect.js';
import ls from './commands/ls.js';
import rm from './commands/rm.js';
import tag from './commands/tag.js';
import verify from './commands/verify.js';
import unpackCmd from './commands/unpack.js';
import repackCmd from './commands/repack.js';
import { artifactCommand, referrersCommand } from './commands/artifact.js';
import { loginCommand, logoutCommand } from './commands/login.js';
import catalog from './commands/catalog.js';
import digest from './commands/digest.js';
import sync from './commands/sync.js';
import mutateCmd from './commands/mutate.js';
import rebaseCmd from './commands/rebase.js';
import { exportCommand, flattenCommand } from './commands/flatten.js';

// Each command's argument type differs; the registry of commands only needs their common shape.
const COMMANDS = [init, build, indexCmd, copyCommand, pushCommand, pullCommand, convertCommand, ls, inspect, tag, rm, gc, verify, unpackCmd, repackCmd, artifactCommand, referrersCommand, loginCommand, logoutCommand, catalog, digest, sync, mutateCmd, rebaseCmd, flattenCommand, exportCommand] as unknown as Command<Record<string, unknown>>[];

/** Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (see interrupt.ts). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Runs the CLI on `argv` (without node and script) and returns the exit code. Never throws. While it
 * runs, SIGINT and SIGTERM interrupt the command (see interrupt.ts).
 */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const json = wantsJson(argv);
  setRawArgv(argv);
  const interrupts = catchInterrupts();
  const { signal } = interrupts;
  let code = EXIT_OK;
  let parser: Argv<GlobalFlags> = yargs(argv)
    .scriptName('ocitool')
    .usage('$0 <command> [options]\n\nOCI image toolkit without a daemon: build, copy, mirror, convert, edit, verify and unpack images, in layouts, registries and archives.')
    .option('debug', { type: 'boolean', default: false, describe: 'print stack traces on errors' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print only results' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON Lines on stdout: one object per event or result, then "done" (or "error")' })
    .epilogue(
      'Images are named as in skopeo: oci:DIR[:TAG|@DIGEST] (or plain DIR[:TAG]), docker://HOST/REPO[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], dir:DIR. A plain argument whose first part is a registry (ghcr.io/…, localhost:5000/…) must be written docker://….',
    )
    .strict()
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version('version', 'print the version of ocitool', ocitoolVersion())
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      // Validation failures come with a message only; errors thrown by handlers come as `err`.
      if (err) throw err;
      throw new OciToolError('USAGE', `${msg} (see 'ocitool --help')`);
    });
  skipHelpCache(parser);
  for (const c of COMMANDS) {
    parser = parser.command(c.command, c.describe, c.builder, commandHandler(c.command.split(' ')[0]!, c.run));
  }
  try {
    await parser.parseAsync();
  } catch (err) {
    // Interrupted: whatever the command failed with on its way out (an aborted stream, say) is the
    // interruption's doing; reported as it.
    code = report(signal.aborted ? signal.reason : err, debug, json ? interrupts.name : undefined);
  } finally {
    interrupts.dispose();
  }
  return code;
}

/**
 * yargs renders a command's whole help text right after starting its handler, in case the handler
 * asks for it later (ocitool's never do: failures are one line): ~25 ms of cliui layout on every run,
 * in the middle of the command's first requests. `--help` itself renders afresh and is unaffected.
 */
function skipHelpCache(parser: Argv<GlobalFlags>): void {
  const internals = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.();
  const usage = internals?.getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

/** --json as given on the command line (also for usage errors, found before yargs has parsed anything). */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--json' || a === '--json=true');
}

/**
 * Prints an error as one line on stderr (plus its stack with --debug) and returns the exit code. With
 * --json (`command` given, maybe empty), also the error event on stdout: message, code, exit code.
 */
function report(err: unknown, debug: boolean, command?: string): number {
  const known = err instanceof OciToolError;
  const message = known ? err.message : (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
  const exitCode = known ? err.exitCode : EXIT_FAILURE;
  process.stderr.write(`${exitCode === EXIT_INTERRUPTED ? lineStart() : ''}ocitool: ${message}\n`);
  if (debug && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n${known ? causeChain(err) : ''}`);
  if (command !== undefined) {
    process.stdout.write(jsonLine('error', { ...(command ? { command } : {}), message, code: known ? err.code : 'FAILURE', exitCode }));
  }
  return exitCode;
}

function causeChain(err: Error): string {
  let out = '';
  let c: unknown = err.cause;
  while (c instanceof Error) {
    out += `caused by: ${c.stack ?? c.message}\n`;
    c = c.cause;
  }
  return out;
}

/** Entry point used by bin/ocitool. */
export async function run(): Promise<void> {
  const code = await main(hideBin(process.argv));
  // Interrupted: end now, whatever still holds the event loop (idle connections, timers).
  if (code === EXIT_INTERRUPTED) process.exit(code);
  process.exitCode = code;
}
