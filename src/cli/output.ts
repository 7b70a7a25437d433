/**
 * Where commands write. Text mode: results on stdout, chatter on stderr (silenced by --quiet).
 * `--json`: stdout is JSON Lines, one object per line, each with an `event` field: the progress
 * events of a transfer, one object per result (an image listed, a file written, a blob removed…),
 * then `done` (the command's reference, digest and counts) or, on failure, `error` (message, code,
 * exit code). Chatter without an event stays on stderr.
 */
export interface Output {
  readonly quiet: boolean;
  readonly json: boolean;
  readonly debug: boolean;
  /** A result line on stdout (text mode only: in --json the events carry the results). */
  result(line: string): void;
  /** Raw bytes on stdout (text mode only). */
  raw(data: Uint8Array | string): void;
  /** --json only: one line `{"event": name, ...fields}` on stdout. */
  event(name: string, fields: Record<string, unknown>): void;
  /** One result: in --json an event, else `line` (if any) on stdout. */
  item(name: string, fields: Record<string, unknown>, line?: string): void;
  /** A note about the work: in --json an event on stdout, else `line` on stderr unless quiet. */
  note(name: string, fields: Record<string, unknown>, line: string): void;
  /** Progress and notes on stderr, unless quiet. */
  info(line: string): void;
  /** Warnings on stderr, always. */
  warn(line: string): void;
}

/** While a progress display has bars on the terminal, stderr lines go through it (drawn above them). */
let stderrSink: ((line: string) => void) | undefined;

/** Sends stderr lines to `sink` (a progress display) until called again without one. */
export function divertStderr(sink?: (line: string) => void): void {
  stderrSink = sink;
}

const toStderr = (line: string): void => {
  if (stderrSink) stderrSink(line);
  else process.stderr.write(`${line}\n`);
};

/** One JSON Lines record: the event name first, then the fields. */
export const jsonLine = (name: string, fields: Record<string, unknown>): string => `${JSON.stringify({ event: name, ...fields })}\n`;

export function makeOutput(flags: { quiet?: boolean; json?: boolean; debug?: boolean }, stdout: { write(s: string | Uint8Array): unknown } = process.stdout): Output {
  const json = flags.json ?? false;
  const quiet = flags.quiet ?? false;
  const info = (line: string): void => {
    if (!quiet) toStderr(line);
  };
  const event = (name: string, fields: Record<string, unknown>): void => {
    if (json) stdout.write(jsonLine(name, fields));
  };
  const result = (line: string): void => {
    if (!json) stdout.write(`${line}\n`);
  };
  return {
    quiet,
    json,
    debug: flags.debug ?? false,
    result,
    raw: (data) => {
      if (!json) stdout.write(data);
    },
    event,
    item: (name, fields, line) => (json ? event(name, fields) : line !== undefined ? result(line) : undefined),
    note: (name, fields, line) => (json ? event(name, fields) : info(line)),
    info,
    warn: (line) => toStderr(`ocitool: warning: ${line}`),
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

/**
 * `line` cut to `width` columns for a terminal: the longest words (digests, names) lose their middle
 * to '…' first, evened out so that each keeps both ends readable; only what still does not fit (words
 * already down to MIN_WORD) is cut at the end.
 */
export function fitLine(line: string, width: number): string {
  if (line.length <= width) return line;
  const words = line.split(' ');
  const len = words.map((w) => w.length);
  let over = line.length - width;
  while (over > 0) {
    let i = 0;
    len.forEach((l, j) => (l > len[i]! ? (i = j) : undefined));
    if (len[i]! <= MIN_WORD) break;
    const second = Math.max(0, ...len.filter((_, j) => j !== i));
    // Down to what is needed, but not below the next longest word (whose turn comes next).
    const target = Math.max(MIN_WORD, len[i]! - over, Math.min(second, len[i]! - 1));
    over -= len[i]! - target;
    len[i] = target;
  }
  const shown = words.map((w, j) => {
    if (len[j]! >= w.length) return w;
    const keep = len[j]! - 1; // the '…' takes one column
    return `${w.slice(0, Math.ceil(keep / 2))}…${w.slice(w.length - Math.floor(keep / 2))}`;
  });
  return shown.join(' ').slice(0, width);
}

const MIN_WORD = 12;
