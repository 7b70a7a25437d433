import type { Argv } from 'yargs';
import type { Output } from './output.js';

/** Flags every command has. */
export interface GlobalFlags {
  debug: boolean;
  quiet: boolean;
  json: boolean;
}

/** What main gives every command besides its flags and output. */
export interface CommandContext {
  /**
   * Aborted by Ctrl-C (SIGINT) or SIGTERM, its reason an OciToolError('INTERRUPTED'): pass it to the
   * library call, which stops its transfers and removes its temp files; main then reports the
   * interruption (exit 130) whatever error the command ends with.
   */
  signal: AbortSignal;
}

/** A command: its yargs shape and a handler that gets parsed flags, the output and the context. */
export interface Command<A = Record<string, unknown>> {
  command: string;
  describe: string;
  builder: (y: Argv<GlobalFlags>) => Argv<GlobalFlags & A>;
  run: (args: GlobalFlags & A, out: Output, ctx: CommandContext) => Promise<void>;
}

export const defineCommand = <A>(c: Command<A>): Command<A> => c;
