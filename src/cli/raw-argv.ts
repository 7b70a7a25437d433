let argv: string[] = [];

/**
 * The command line as given. yargs groups repeated options by name, which loses the order of
 * different options; `build` needs the order of --add and --diff to order its layers.
 */
export function setRawArgv(a: string[]): void {
  argv = a;
}

export function rawArgv(): string[] {
  return argv;
}
