import type { Argv } from 'yargs';
import type { Output } from './output.js';

/** Flags every command has. */
export interface GlobalFlags {
  debug: boolean;
  quiet: boolean;
  json: boolean;
}

/** A command: its yargs shape and a handler that gets parsed flags and the output. */
export interface Command<A = Record<string, unknown>> {
  command: string;
  describe: string;
  builder: (y: Argv<GlobalFlags>) => Argv<GlobalFlags & A>;
  run: (args: GlobalFlags & A, out: Output) => Promise<void>;
}

export const defineCommand = <A>(c: Command<A>): Command<A> => c;
