import { rawArgv } from './raw-argv.js';

/** Whether `--NAME` (or `--NAME=…`) is on the command line (for flags with a default). */
export function flagGiven(name: string, argv: string[] = rawArgv()): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}
