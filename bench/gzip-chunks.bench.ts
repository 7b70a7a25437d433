/**
 * Layer gzip: zlib.gzipSync against ParallelGzip's chunk sizes and levels, and pigz -p2, on one sample.
 *
 *   OCITOOL_SKIP_BUILD=1 npx vitest bench --run bench/gzip-chunks.bench.ts
 *
 * (vitest's default benchmark include, **\/*.{bench,benchmark}.?(c|m)[jt]s?(x), already matches this file;
 * OCITOOL_SKIP_BUILD=1 skips the config's global setup, which would build dist/ first.)
 *
 * The sample: regular files under /usr/share, walked depth-first with names in byte order, at most 4 MiB
 * from each top-level directory so that no one kind of file dominates, concatenated up to 64 MiB
 * (GZIP_BENCH_MIB to change). Each variant runs once to warm up and GZIP_BENCH_RUNS (3) times measured;
 * the summary prints the median MB/s (10^6 bytes of input per second) and compressed/original size, and
 * checks that every output gunzips back to the sample.
 */
import { spawn } from 'node:child_process';
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { bench, describe } from 'vitest';
import { gzipBuffer, type ParallelGzipOptions } from '../src/layer/gzip.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const ROOT = '/usr/share';
const LIMIT = Number(process.env.GZIP_BENCH_MIB ?? 64) * MiB;
const PER_DIR = 4 * MiB;
const RUNS = Number(process.env.GZIP_BENCH_RUNS ?? 3);

function loadSample(): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const walk = (dir: string, budget: { left: number }): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (budget.left <= 0 || total >= LIMIT) return;
      const path = join(dir, name);
      try {
        const st = lstatSync(path);
        if (st.isDirectory()) walk(path, budget);
        else if (st.isFile() && st.size > 0) {
          const take = Math.min(st.size, budget.left, LIMIT - total);
          const data = readFileSync(path).subarray(0, take);
          parts.push(data);
          total += data.length;
          budget.left -= data.length;
        }
      } catch {
        // unreadable: skip
      }
    }
  };
  for (const top of readdirSync(ROOT).sort()) {
    if (total >= LIMIT) break;
    walk(join(ROOT, top), { left: PER_DIR });
  }
  return Buffer.concat(parts, total);
}

const sample = loadSample();

interface Row {
  name: string;
  level: number;
  seconds: number[];
  size: number;
  ok: boolean;
}
const rows: Row[] = [];

function pigz(args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('pigz', args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`pigz exited ${code}`))));
    child.stdin.end(input);
  });
}

const mbps = (s: number): number => sample.length / 1e6 / s;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function report(): void {
  const lines = [
    `sample: ${(sample.length / MiB).toFixed(1)} MiB from ${ROOT}; ${availableParallelism()} cores; node ${process.version}, zlib ${process.versions.zlib}; median of ${RUNS}`,
    'speed and size are compared with zlib.gzipSync at the same level',
    `${'variant'.padEnd(44)} ${'MB/s'.padStart(7)} ${'× gzipSync'.padStart(10)} ${'ratio'.padStart(7)} ${'size vs gzipSync'.padStart(17)} round-trip`,
  ];
  for (const r of rows) {
    const base = rows.find((b) => b.level === r.level && b.name.startsWith('zlib.gzipSync'));
    const t = median(r.seconds);
    const speedup = base ? median(base.seconds) / t : NaN;
    const sizeVs = base ? `${((r.size / base.size - 1) * 100).toFixed(2)} %` : '';
    lines.push(
      `${r.name.padEnd(44)} ${mbps(t).toFixed(1).padStart(7)} ${speedup.toFixed(2).padStart(10)} ${(r.size / sample.length).toFixed(4).padStart(7)} ${sizeVs.padStart(17)} ${r.ok ? 'ok' : 'FAILED'}`,
    );
  }
  console.log(lines.join('\n'));
}

let remaining = 0;

/** A bench whose own timing (compression only) and output size go into the summary. */
function measure(name: string, level: number, compress: () => Buffer | Promise<Buffer>): void {
  const row: Row = { name, level, seconds: [], size: 0, ok: false };
  rows.push(row);
  remaining++;
  let warm = false;
  bench(
    name,
    async () => {
      const start = performance.now();
      const out = await compress();
      const seconds = (performance.now() - start) / 1000;
      if (!warm) {
        // The warm-up run: check the output once, outside the measured runs.
        warm = true;
        row.size = out.length;
        row.ok = zlib.gunzipSync(out).equals(sample);
        return;
      }
      row.seconds.push(seconds);
    },
    {
      time: 0,
      iterations: RUNS,
      warmupTime: 0,
      warmupIterations: 1,
      teardown: (_task, mode) => {
        if (mode === 'run' && --remaining === 0) report();
      },
    },
  );
}

const parallel = (opts: ParallelGzipOptions) => () => gzipBuffer(sample, opts);

describe(`gzip ${(sample.length / MiB).toFixed(0)} MiB of ${ROOT}`, () => {
  measure('zlib.gzipSync level 6', 6, () => zlib.gzipSync(sample, { level: 6 }));
  measure('ParallelGzip level 6, 128 KiB chunks', 6, parallel({ level: 6, chunkSize: 128 * KiB }));
  measure('ParallelGzip level 6, 256 KiB chunks', 6, parallel({ level: 6, chunkSize: 256 * KiB }));
  measure('ParallelGzip level 6, 1 MiB chunks', 6, parallel({ level: 6, chunkSize: MiB }));
  measure('ParallelGzip level 6, 4 MiB chunks', 6, parallel({ level: 6, chunkSize: 4 * MiB }));
  measure('ParallelGzip level 6, 1 MiB, concurrency 3', 6, parallel({ level: 6, chunkSize: MiB, concurrency: 3 }));
  measure('ParallelGzip level 1, 1 MiB chunks', 1, parallel({ level: 1, chunkSize: MiB }));
  measure('ParallelGzip level 9, 1 MiB chunks', 9, parallel({ level: 9, chunkSize: MiB }));
  measure('zlib.gzipSync level 1', 1, () => zlib.gzipSync(sample, { level: 1 }));
  measure('zlib.gzipSync level 9', 9, () => zlib.gzipSync(sample, { level: 9 }));
  measure('pigz -p2 -6 (128 KiB blocks)', 6, () => pigz(['-p2', '-6', '-c'], sample));
  measure('pigz -p2 -6 -b 1024 (1 MiB blocks)', 6, () => pigz(['-p2', '-6', '-b', '1024', '-c'], sample));
  measure('pigz -p2 -1', 1, () => pigz(['-p2', '-1', '-c'], sample));
  measure('pigz -p2 -9', 9, () => pigz(['-p2', '-9', '-c'], sample));
});
