/** Where commands write: results to stdout, chatter to stderr (silenced by --quiet). */
export interface Output {
  readonly quiet: boolean;
  readonly json: boolean;
  readonly debug: boolean;
  /** A result line on stdout (always printed; the last one of an image command is its digest). */
  result(line: string): void;
  /** Raw bytes on stdout. */
  raw(data: Uint8Array | string): void;
  /** A JSON document on stdout. */
  jsonOut(value: unknown): void;
  /** Progress and notes on stderr, unless quiet. */
  info(line: string): void;
  /** Warnings on stderr, always. */
  warn(line: string): void;
}

export function makeOutput(flags: { quiet?: boolean; json?: boolean; debug?: boolean }): Output {
  return {
    quiet: flags.quiet ?? false,
    json: flags.json ?? false,
    debug: flags.debug ?? false,
    result: (line) => void process.stdout.write(`${line}\n`),
    raw: (data) => void process.stdout.write(data),
    jsonOut: (value) => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    info: (line) => {
      if (!flags.quiet) process.stderr.write(`${line}\n`);
    },
    warn: (line) => void process.stderr.write(`ocitool: warning: ${line}\n`),
  };
}

/** Left-aligned columns, two spaces apart. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '));
}

export function humanSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
