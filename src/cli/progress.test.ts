import { describe, expect, it } from 'vitest';
import type { Descriptor } from '../spec/types.js';
import { makeOutput, type Output } from './output.js';
import { progressReporter } from './progress.js';

const layer: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 10 * 1024 * 1024 };
const config: Descriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 500 };
const manifest: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 400 };

function capture(flags: { quiet?: boolean; json?: boolean } = {}) {
  const info: string[] = [];
  const raw: string[] = [];
  const out: Output = { ...makeOutput(flags, { write: (s) => raw.push(String(s)) }), info: (l) => void (flags.quiet ? undefined : info.push(l)) };
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
    play(progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 120 }, clock.now), clock);
    // The half-way bar: 20 of 40 cells filled, bytes and rate.
    expect(screen).toContain(`aaaaaaaaaaaa [${'='.repeat(20)}>${' '.repeat(19)}] 5.0 MiB/10 MiB 10 MiB/s`);
    expect(screen).toMatch(/5\.0 MiB\/10 MiB 10 MiB\/s/);
    // Bars are erased (cursor up, clear to end) before what replaces them.
    expect(screen).toContain('\r\x1b[1A\x1b[J');
    expect(screen).toContain(`copied ${layer.digest} 10 MiB in 1.0 s\n`);
    expect(screen.endsWith('2 copied, 0 mounted, 1 already there (10 MiB in 1.0 s, 10 MiB/s)\n')).toBe(true);
    // No bar wider than the terminal.
    const bars = screen.split('\n').map((l) => l.replace(/\r|\x1b\[[0-9]*[AJ]/g, '')).filter((l) => l.startsWith('aaaaaaaaaaaa ['));
    expect(bars).toHaveLength(1);
    for (const line of bars) expect(line.length).toBeLessThan(120);
  });

  it('blobs started but not moving yet (queued behind --concurrency 1) show as waiting, not as bars at 0 B/s', () => {
    const { out } = capture();
    const clock = fakeClock();
    let screen = '';
    const r = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 80 }, clock.now);
    const second: Descriptor = { ...layer, digest: `sha256:${'d'.repeat(64)}` };
    r.onProgress({ type: 'blob-start', descriptor: layer });
    r.onProgress({ type: 'blob-start', descriptor: second });
    clock.advance(500);
    r.onProgress({ type: 'blob-progress', descriptor: layer, bytes: 1024 * 1024 });
    const last = screen.slice(screen.lastIndexOf('\x1b[J') + 3).split('\n');
    expect(last[0]).toMatch(/^aaaaaaaaaaaa \[.*\] 1\.0 MiB\/10 MiB 2\.0 MiB\/s$/);
    expect(last[1]).toBe('dddddddddddd waiting 10 MiB');
    expect(screen).not.toMatch(/0 B\/s/);
  });

  it('a re-encoded blob: its done event (the new digest, its source named) takes the bar of its source away', () => {
    const { out } = capture();
    const clock = fakeClock();
    let screen = '';
    const r = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 120 }, clock.now);
    const gzipped: Descriptor = { ...layer, digest: `sha256:${'e'.repeat(64)}`, size: 1024 };
    r.onProgress({ type: 'blob-start', descriptor: layer });
    r.onProgress({ type: 'blob-done', descriptor: gzipped, bytes: 1024, seconds: 1, source: layer });
    r.onProgress({ type: 'manifest-pushed', descriptor: manifest });
    // After the done line, no bar of the source is drawn again.
    expect(screen.slice(screen.indexOf(`copied ${gzipped.digest}`))).not.toContain('aaaaaaaaaaaa ');
  });

  it('a warning printed while bars are up goes above them (bars erased and redrawn), not through them', () => {
    const out = makeOutput({});
    const clock = fakeClock();
    let screen = '';
    const r = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 120 }, clock.now);
    r.onProgress({ type: 'blob-start', descriptor: layer });
    screen = '';
    out.warn('referrers left behind');
    expect(screen).toBe('\r\x1b[1A\x1b[Jocitool: warning: referrers left behind\naaaaaaaaaaaa waiting 10 MiB\n');
    r.finish();
  });

  it('every line fits the terminal: long names lose their middle instead of wrapping', () => {
    const { out } = capture();
    const clock = fakeClock();
    let screen = '';
    const r = progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns: 70 }, clock.now);
    const repo = 'team/a-rather-long-repository-name-that-goes-on-and-on/app';
    r.onProgress({ type: 'blob-start', descriptor: layer });
    r.onProgress({ type: 'blob-mount', descriptor: config, from: repo });
    r.onProgress({ type: 'blob-retry', descriptor: layer, attempt: 1, error: `127.0.0.1:5000: blobs ${layer.digest}: socket hang up` });
    clock.advance(500);
    r.onProgress({ type: 'blob-progress', descriptor: layer, bytes: 5 * 1024 * 1024 });
    r.onProgress({ type: 'blob-done', descriptor: layer, bytes: layer.size, seconds: 1 });
    r.finish();
    const lines = screen.split('\n').map((l) => l.replace(/\r|\x1b\[[0-9]*[AJ]/g, '')).filter((l) => l !== '');
    for (const l of lines) expect(l.length, l).toBeLessThan(70);
    const mounted = lines.find((l) => l.startsWith('mounted '))!;
    // Both ends of the digest and of the repository stay readable.
    expect(mounted).toMatch(/^mounted sha256:b+…b+ from team\/a-.*….*\/app$/);
    expect(lines.find((l) => l.startsWith('copied '))).toMatch(/^copied sha256:a+…a+ 10 MiB in 1\.0 s$/);
    expect(lines.at(-1)).toBe('1 copied, 1 mounted, 0 already there (10 MiB in 0.5 s, 20 MiB/s)');
  });

  it('a narrow terminal gets a shorter bar with the rate still whole; a pty without a size counts as 80 columns', () => {
    for (const [columns, max] of [[50, 50], [0, 80]] as const) {
      const { out } = capture();
      const clock = fakeClock();
      let screen = '';
      play(progressReporter(out, { write: (s: string) => (screen += s), isTTY: true, columns }, clock.now), clock);
      const bars = screen.split('\n').map((l) => l.replace(/\r|\x1b\[[0-9]*[AJ]/g, '')).filter((l) => l.startsWith('aaaaaaaaaaaa ['));
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
