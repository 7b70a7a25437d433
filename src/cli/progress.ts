import type { CopyEvent } from '../content/copy.js';
import { divertStderr, fitLine, humanSize, type Output } from './output.js';

/** Where bars are drawn: a terminal stream (process.stderr, or a fake one in tests). */
export interface TerminalLike {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressReporter {
  onProgress(event: CopyEvent): void;
  /** Clears the bars and prints the summary line (not in --json or --quiet). */
  finish(): void;
  /**
   * The copy failed: clears the bars (the cursor left at the start of a clean line for the error) and
   * shows nothing more. Also done the moment the reporter's signal aborts (Ctrl-C).
   */
  fail(): void;
  /** What the copy did so far: the counts the summary line and the --json done event show. */
  counts(): CopyCounts;
}

/** Runs a copy that reports to `progress`: finished when it succeeds, its bars erased when it fails. */
export async function watched<T>(progress: ProgressReporter, run: (onProgress: (event: CopyEvent) => void) => Promise<T>): Promise<T> {
  try {
    const result = await run((e) => progress.onProgress(e));
    progress.finish();
    return result;
  } catch (err) {
    progress.fail();
    throw err;
  }
}

export interface CopyCounts {
  copied: number;
  mounted: number;
  skipped: number;
  bytes: number;
}

interface Active {
  digest: string;
  size: number;
  bytes: number;
  started: number;
}

const REDRAW_MS = 100;
const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);
const rate = (bytes: number, ms: number): string => `${humanSize(ms > 0 ? Math.round((bytes * 1000) / ms) : 0)}/s`;

/**
 * How a copy shows itself:
 * - `--json`: one JSON object per event on stdout (blob-start, blob-progress, blob-done, blob-skip,
 *   blob-mount, blob-retry, manifest-pushed, manifest-skip);
 * - `--quiet`: nothing;
 * - stderr a terminal: a bar per blob in flight (bytes, rate), a line per blob finished, a summary;
 * - otherwise: a line per blob or manifest finished, and the summary.
 * Once `signal` aborts (or fail() is called) the display is cleared and nothing more is shown, so that
 * the error is the last line.
 */
export function progressReporter(out: Output, term: TerminalLike = process.stderr, now: () => number = Date.now, signal?: AbortSignal): ProgressReporter {
  const reporter = makeReporter(out, term, now);
  let over = false;
  const fail = (): void => {
    if (over) return;
    over = true;
    reporter.fail();
  };
  signal?.addEventListener('abort', fail, { once: true });
  return {
    onProgress: (e) => {
      if (!over) reporter.onProgress(e);
    },
    finish: () => {
      if (over) return;
      over = true;
      signal?.removeEventListener('abort', fail);
      reporter.finish();
    },
    fail,
    counts: reporter.counts,
  };
}

type Shown = Omit<ProgressReporter, 'counts'>;

function makeReporter(out: Output, term: TerminalLike, now: () => number): ProgressReporter {
  const start = now();
  const n: CopyCounts = { copied: 0, mounted: 0, skipped: 0, bytes: 0 };
  const count = (e: CopyEvent): void => {
    if (e.type === 'blob-done') {
      n.copied++;
      n.bytes += e.bytes;
    } else if (e.type === 'manifest-pushed') n.copied++;
    else if (e.type === 'blob-mount') n.mounted++;
    else if (e.type === 'blob-skip' || e.type === 'manifest-skip') n.skipped++;
  };
  const shown = showing(out, term, now, start, n);
  return {
    onProgress: (e) => {
      count(e);
      shown.onProgress(e);
    },
    finish: shown.finish,
    fail: shown.fail,
    counts: () => ({ ...n }),
  };
}

function showing(out: Output, term: TerminalLike, now: () => number, start: number, n: CopyCounts): Shown {
  if (out.json) {
    return {
      onProgress: (e) => {
        const { descriptor, type, ...rest } = e;
        const source = 'source' in rest && rest.source ? { source: rest.source.digest } : {};
        out.event(type, { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size, ...rest, ...source });
      },
      finish: () => undefined,
      fail: () => undefined,
    };
  }
  const lineFor = (e: CopyEvent): string | undefined => {
    const d = e.descriptor;
    switch (e.type) {
      case 'blob-done':
        return `copied ${d.digest} ${humanSize(e.bytes)} in ${e.seconds.toFixed(1)} s`;
      case 'blob-mount':
        return `mounted ${d.digest} from ${e.from}`;
      case 'blob-skip':
      case 'manifest-skip':
        return `already there ${d.digest}`;
      case 'manifest-pushed':
        return `copied ${d.digest} (${d.mediaType})`;
      case 'blob-retry':
        return `retrying ${d.digest} (attempt ${e.attempt + 1}): ${e.error}`;
      default:
        return undefined;
    }
  };
  const summary = (): string => {
    const ms = now() - start;
    return `${n.copied} copied, ${n.mounted} mounted, ${n.skipped} already there (${humanSize(n.bytes)} in ${(ms / 1000).toFixed(1)} s, ${rate(n.bytes, ms)})`;
  };
  if (out.quiet) return { onProgress: () => undefined, finish: () => undefined, fail: () => undefined };
  if (!term.isTTY) {
    return {
      onProgress: (e) => {
        const line = lineFor(e);
        if (line) out.info(line);
      },
      finish: () => out.info(summary()),
      fail: () => undefined,
    };
  }

  // A terminal: the bars of blobs in flight stay at the bottom and are redrawn in place.
  const active = new Map<string, Active>();
  let drawn = 0;
  let lastDraw = 0;
  // From the start of the line: whatever the terminal echoed below the bars (a ^C, keys typed) goes
  // with them, and a redraw never starts mid-line.
  const clear = (): string => (drawn > 0 ? `\r\x1b[${drawn}A\x1b[J` : '');
  const bar = (a: Active, width: number): string => {
    const label = `${short(a.digest)} `;
    // Started but no byte moved yet: queued behind others (--concurrency) or waiting for the far end.
    if (a.bytes === 0) return fitLine(`${label}waiting ${humanSize(a.size)}`, width);
    const frac = a.size > 0 ? Math.min(1, a.bytes / a.size) : 0;
    const tail = ` ${humanSize(a.bytes)}/${humanSize(a.size)} ${rate(a.bytes, now() - a.started)}`;
    const room = Math.max(10, Math.min(40, width - label.length - tail.length - 2));
    const fill = Math.round(frac * room);
    return fitLine(`${label}[${'='.repeat(fill)}${fill < room ? '>' : ''}${' '.repeat(Math.max(0, room - fill - 1))}]${tail}`, width);
  };
  const draw = (force: boolean, above: string[] = []): void => {
    const t = now();
    if (!force && above.length === 0 && t - lastDraw < REDRAW_MS) return;
    lastDraw = t;
    // The last column stays empty (a full line would wrap on some terminals); a pty without a size says 0.
    const width = (term.columns || 80) - 1;
    const lines = [...active.values()].map((a) => bar(a, width));
    term.write(`${clear()}${above.map((l) => `${fitLine(l, width)}\n`).join('')}${lines.map((l) => `${l}\n`).join('')}`);
    drawn = lines.length;
  };
  // Notes and warnings printed while bars are up go above them, not through them.
  const own = (on: boolean): void => divertStderr(on ? (l) => (drawn > 0 ? draw(true, [l]) : void term.write(`${l}\n`)) : undefined);
  own(true);
  return {
    onProgress: (e) => {
      const d = e.descriptor;
      if (e.type === 'blob-start') active.set(d.digest, { digest: d.digest, size: d.size, bytes: 0, started: now() });
      else if (e.type === 'blob-progress') {
        const a = active.get(d.digest);
        if (a) a.bytes = e.bytes;
      } else if (e.type === 'blob-done') active.delete(e.source?.digest ?? d.digest);
      else if (e.type === 'blob-mount') active.delete(d.digest);
      const line = e.type === 'blob-skip' || e.type === 'manifest-skip' ? undefined : lineFor(e);
      draw(e.type === 'blob-start', line ? [line] : []);
    },
    finish: () => {
      active.clear();
      draw(true, [summary()]);
      own(false);
    },
    fail: () => {
      // A ^C the terminal echoed below the bars goes with them (or, with no bars, its line is cleared).
      term.write(drawn > 0 ? clear() : '\r\x1b[K');
      drawn = 0;
      active.clear();
      own(false);
    },
  };
}
