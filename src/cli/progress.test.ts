import { describe, expect, it } from 'vitest';
import type { Descriptor } from '../spec/types.js';
import type { Output } from './output.js';
import { progressReporter } from './progress.js';

const layer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 10 * 1024 * 1024 };
const config: Descriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 500 };
const manifest: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 400 };

function capture(flags: { quiet?: boolean; json?: boolean } = {}) {
  const info: string[] = [];
  const raw: string[] = [];
  const out: Output = {
    quiet: flags.quiet ?? false,
    json: flags.json ?? false,
    debug: false,
    result: (l) => raw.push(`${l}\n`),
    raw: (d) => raw.push(String(d)),
    jsonOut: (v) => raw.push(JSON.stringify(v)),
    info: (l) => {
      if (!flags.quiet) info.push(l);
    },
    warn: () => undefined,
  };
  return { out, info, raw };
}

function fakeClock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function play(r: ReturnType<typeof progressReporter>, clock: ReturnType<typeof fakeClock>): void {
  r.onProgress({ type: 'blob-skip', descriptor: config });
  r.onProgress({ type: 'blob-start', descriptor: layer });
  clock.advance(500);
  r.onProgress({ type: 'blob-progress', descriptor: layer, bytes: 5 * 1024 * 1024 });
  clock.advance(500);
  r.onProgress({ type: 'blob-done', descriptor: layer, bytes: layer.size, seconds: 1 });
  r.onProgress({ type: 'manifest-pushed', descriptor: manifest });
  r.finish();
}

describe('progressReporter', () => {
  it('not on a terminal: a line per blob or manifest finished, then the summary', () => {
    const { out, info } = capture();
    const clock = fakeClock();
    play(progressReporter(out, { write: () => true, isTTY: false }, clock.now), clock);
    expect(info).toEqual([
      `already there ${config.digest}`,
      `copied ${layer.digest} 10 MiB in 1.0 s`,
      `copied ${manifest.digest} (${manifest.mediaType})`,
      '2 copied, 0 mounted, 1 already there (10 MiB in 1.0 s, 10 MiB/s)',
    ]);
  });

  it('on a terminal: a bar for a blob in flight, redrawn in place, finished lines above it', () => {
    const { out } = capture();
    const clock = fakeClock();
    let screen = '';
    play(progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 80 }, clock.now), clock);
    // The half-way bar: 20 of 40 cells filled, bytes and rate.
    expect(screen).toContain(`aaaaaaaaaaaa [${'='.repeat(20)}>${' '.repeat(19)}] 5.0 MiB/10 MiB 10 MiB/s`);
    expect(screen).toMatch(/5\.0 MiB\/10 MiB 10 MiB\/s/);
    // Bars are erased (cursor up, clear to end) before what replaces them.
    expect(screen).toContain('\x1b[1A\x1b[J');
    expect(screen).toContain(`copied ${layer.digest} 10 MiB in 1.0 s\n`);
    expect(screen.endsWith('2 copied, 0 mounted, 1 already there (10 MiB in 1.0 s, 10 MiB/s)\n')).toBe(true);
    // No bar wider than the terminal.
    const bars = screen.split('\n').map((l) => l.replace(/\x1b\[[0-9]*[AJ]/g, '')).filter((l) => l.startsWith('aaaaaaaaaaaa ['));
    expect(bars).toHaveLength(2);
    for (const line of bars) expect(line.length).toBeLessThan(80);
  });

  it('a narrow terminal gets a shorter bar with the rate still whole; a pty without a size counts as 80 columns', () => {
    for (const [columns, max] of [[50, 50], [0, 80]] as const) {
      const { out } = capture();
      const clock = fakeClock();
      let screen = '';
      play(progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns }, clock.now), clock);
      const bars = screen.split('\n').map((l) => l.replace(/\x1b\[[0-9]*[AJ]/g, '')).filter((l) => l.startsWith('aaaaaaaaaaaa ['));
      expect(bars.length).toBeGreaterThan(0);
      for (const line of bars) {
        expect(line.length).toBeLessThan(max);
        expect(line).toMatch(/B\/s$/);
      }
    }
  });

  it('--json: one JSON object per event on stdout, nothing on stderr', () => {
    const { out, info, raw } = capture({ json: true });
    const clock = fakeClock();
    play(progressReporter(out, { write: () => true, isTTY: true }, clock.now), clock);
    const events = raw.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['blob-skip', 'blob-start', 'blob-progress', 'blob-done', 'manifest-pushed']);
    expect(events[2]).toEqual({ event: 'blob-progress', digest: layer.digest, mediaType: layer.mediaType, size: layer.size, bytes: 5 * 1024 * 1024 });
    expect(info).toEqual([]);
  });

  it('--quiet: nothing at all', () => {
    const { out, info, raw } = capture({ quiet: true });
    const clock = fakeClock();
    let screen = '';
    play(progressReporter(out, { write: (s: string) => (screen += s), isTTY: true }, clock.now), clock);
    expect([info, raw, screen]).toEqual([[], [], '']);
  });

  it('Ctrl-C (the signal aborts): the bars and an echoed ^C are erased at once, and nothing more is drawn', () => {
    const { out } = capture();
    const clock = fakeClock();
    let screen = '';
    const abort = new AbortController();
    const r = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 80 }, clock.now, abort.signal);
    r.onProgress({ type: 'blob-start', descriptor: layer });
    r.onProgress({ type: 'blob-start', descriptor: config });
    screen = '';
    abort.abort();
    // From the start of the line (where a ^C was echoed), up over both bars, cleared to the end.
    expect(screen).toBe('\r\x1b[2A\x1b[J');
    clock.advance(500);
    r.onProgress({ type: 'blob-progress', descriptor: layer, bytes: 5 * 1024 * 1024 });
    r.onProgress({ type: 'blob-done', descriptor: layer, bytes: layer.size, seconds: 1 });
    r.finish();
    expect(screen).toBe('\r\x1b[2A\x1b[J');
  });

  it('a failed copy: fail() clears the bars and prints no summary; not on a terminal, no line after it', () => {
    const { out, info } = capture();
    const clock = fakeClock();
    let screen = '';
    const tty = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 80 }, clock.now);
    tty.onProgress({ type: 'blob-start', descriptor: layer });
    tty.fail();
    expect(screen.endsWith('\r\x1b[1A\x1b[J')).toBe(true);
    const abort = new AbortController();
    const plain = progressReporter(out, { write: () => true, isTTY: false }, clock.now, abort.signal);
    plain.onProgress({ type: 'blob-done', descriptor: config, bytes: 500, seconds: 0 });
    abort.abort();
    plain.onProgress({ type: 'blob-done', descriptor: layer, bytes: layer.size, seconds: 1 });
    plain.finish();
    expect(info).toEqual([`copied ${config.digest} 500 B in 0.0 s`]);
  });
});
