import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ParallelGzip, gzipBuffer } from './gzip.js';

const CHUNK = 64 * 1024;

/** Compressible but not trivial: text-like lines with random words. */
function textLike(n: number, seed = 1): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'layer', 'image', 'oci', 'tar', 'blob', 'digest'];
  let x = seed;
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = `${words[x % words.length]}${x % 97} `;
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('').slice(0, n));
}

async function gzipSplit(data: Buffer, splits: number[], opts: ConstructorParameters<typeof ParallelGzip>[0]): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = splits[i % splits.length]!;
    pieces.push(data.subarray(off, off + n));
    off += n;
  }
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), new ParallelGzip(opts), new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

describe('ParallelGzip', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 123])('round-trips %i bytes through gunzip and gzip -dc', async (n) => {
    const data = Buffer.concat([textLike(Math.floor(n / 2)), randomBytes(n - Math.floor(n / 2))]);
    const gz = await gzipSplit(data, [7, 1, 3 * CHUNK], { chunkSize: CHUNK });
    expect(zlib.gunzipSync(gz).equals(data)).toBe(true);
    expect(execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 1 << 30 }).equals(data)).toBe(true);
    expect(gz.readUInt32LE(gz.length - 8)).toBe(zlib.crc32(data));
    expect(gz.readUInt32LE(gz.length - 4)).toBe(data.length);
  });

  it('gives the same bytes whatever the write sizes and concurrency', async () => {
    const data = textLike(20 * CHUNK + 99, 7);
    const a = await gzipSplit(data, [1 << 20], { chunkSize: CHUNK, concurrency: 2 });
    const b = await gzipSplit(data, [13, 4096, 77777], { chunkSize: CHUNK, concurrency: 16 });
    expect(b.equals(a)).toBe(true);
  });

  it('sets XFL by level, and level 0 stores', async () => {
    const data = textLike(100_000);
    expect((await gzipBuffer(data, { level: 1 }))[8]).toBe(4);
    expect((await gzipBuffer(data, { level: 6 }))[8]).toBe(0);
    expect((await gzipBuffer(data, { level: 9 }))[8]).toBe(2);
    const stored = await gzipBuffer(data, { level: 0 });
    expect(stored.length).toBeGreaterThan(data.length);
    expect(zlib.gunzipSync(stored).equals(data)).toBe(true);
  });

  it('compresses within 1% of a single zlib stream (the dictionary carries over chunks)', async () => {
    const data = textLike(8 << 20, 3);
    const ours = await gzipBuffer(data, { level: 6 });
    const single = zlib.gzipSync(data, { level: 6 });
    expect(ours.length / single.length).toBeLessThan(1.01);
  });

  it('passes a source error on', async () => {
    const src = new Readable({ read() { this.destroy(new Error('disk on fire')); } });
    await expect(pipeline(src, new ParallelGzip(), new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow('disk on fire');
  });

  it('keeps memory flat under a slow consumer (backpressure)', async () => {
    const gz = new ParallelGzip({ chunkSize: CHUNK, concurrency: 4 });
    let produced = 0;
    let maxAhead = 0;
    let consumed = 0;
    const total = 512 * CHUNK; // 32 MiB
    const block = randomBytes(CHUNK);
    const src = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        produced += block.length;
        maxAhead = Math.max(maxAhead, produced - consumed);
        this.push(block);
      },
    });
    const sink = new Writable({
      highWaterMark: 1,
      write: (c: Buffer, _e, cb) => {
        consumed += c.length; // random data: compressed ≈ input size
        setTimeout(cb, 1);
      },
    });
    await pipeline(src, gz, sink);
    // Bounded by the chunks in flight plus the streams' buffers (1 MiB readable side), not by the input.
    expect(maxAhead).toBeLessThan(4 << 20);
    expect(consumed).toBeGreaterThan(total);
  });
});
