import { execFileSync, spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_CHUNK_SIZE,
  DICTIONARY_SIZE,
  GZIP_HEADER_SIZE,
  GZIP_TRAILER_SIZE,
  MEM_LEVEL,
  ParallelGzip,
  type ParallelGzipOptions,
  gzipBuffer,
  gzipHeader,
} from './gzip.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Small chunks keep most tests fast; the boundary sizes also run at the default chunk size. */
const CHUNK = 64 * KiB;
const HAVE_PIGZ = spawnSync('pigz', ['--version']).status === 0;

/** Deterministic incompressible bytes (AES-CTR keystream). */
function noise(n: number, seed = 1): Buffer {
  const key = Buffer.alloc(16, seed);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

/** Deterministic compressible text: lines of words and numbers, with repeats far apart (beyond 32 KiB). */
function text(n: number, seed = 1): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'layer', 'image', 'manifest', 'tar', 'blob', 'digest', 'sha256', 'config'];
  let x = seed;
  const lines: string[] = [];
  let len = 0;
  while (len < n) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const line = `${words[x % words.length]} ${words[(x >> 8) % words.length]} ${x % 9973} ${(x >> 4) % 100}\n`;
    lines.push(line);
    len += line.length;
  }
  return Buffer.from(lines.join('').slice(0, n));
}

/** Half text, half noise, interleaved in 100 KiB runs. */
function mixed(n: number, seed = 1): Buffer {
  const t = text(n, seed);
  const r = noise(n, seed);
  const out = Buffer.allocUnsafe(n);
  for (let off = 0, i = 0; off < n; off += 100 * KiB, i++) (i % 2 ? r : t).copy(out, off, off, Math.min(n, off + 100 * KiB));
  return out;
}

/** Cuts `data` into writes of the given sizes, cycling. */
function split(data: Buffer, sizes: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let off = 0, i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    pieces.push(data.subarray(off, off + n));
    off += n;
  }
  return pieces;
}

async function gzipWritesInto(gz: ParallelGzip, pieces: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), gz, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

const gzipWrites = (pieces: Buffer[], opts: ParallelGzipOptions): Promise<Buffer> => gzipWritesInto(new ParallelGzip(opts), pieces);

/** pigz's method written out plainly with the synchronous zlib API: the expected bytes. */
function reference(data: Buffer, level: number, chunkSize: number): Buffer {
  const parts = [gzipHeader(level)];
  let off = 0;
  do {
    const end = Math.min(data.length, off + chunkSize);
    const last = end === data.length && end - off < chunkSize;
    const opts: zlib.ZlibOptions = { level, memLevel: MEM_LEVEL, finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH };
    if (off > 0) opts.dictionary = data.subarray(Math.max(0, off - DICTIONARY_SIZE), off);
    parts.push(zlib.deflateRawSync(data.subarray(off, end), opts));
    off = end;
    if (last) break;
  } while (true);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(zlib.crc32(data), 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([...parts, trailer]);
}

function expectGunzips(gz: Buffer, data: Buffer): void {
  expect(zlib.gunzipSync(gz).equals(data)).toBe(true);
  execFileSync('gzip', ['-t'], { input: gz }); // throws on a non-zero exit
  expect(execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 1 << 30 }).equals(data)).toBe(true);
  if (HAVE_PIGZ) expect(execFileSync('pigz', ['-dc'], { input: gz, maxBuffer: 1 << 30 }).equals(data)).toBe(true);
  expect(gz.readUInt32LE(gz.length - 8)).toBe(zlib.crc32(data));
  expect(gz.readUInt32LE(gz.length - 4)).toBe(data.length % 2 ** 32);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ParallelGzip', () => {
  describe.each([CHUNK, DEFAULT_CHUNK_SIZE])('chunk size %i', (chunkSize) => {
    it.each([0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize + 12_345])('round-trips %i bytes fed in 1, 7 and 3 MiB writes', async (n) => {
      const data = mixed(n, n);
      const gz = await gzipWrites(split(data, [1, 7, 3 * MiB]), { chunkSize });
      expectGunzips(gz, data);
      expect(gz.equals(reference(data, 6, chunkSize))).toBe(true);
    });
  });

  it('round-trips several MiB of text and noise through gunzip, gzip and pigz', async () => {
    const data = Buffer.concat([text(3 * MiB, 5), noise(2 * MiB, 5), text(MiB + 17, 6)]);
    const gz = await gzipWrites(split(data, [1, 7, 3 * MiB, 65_537]), {});
    expectGunzips(gz, data);
    expect(gz.equals(reference(data, 6, DEFAULT_CHUNK_SIZE))).toBe(true);
  });

  it('writes the empty input as header, one empty final block and a zero trailer', async () => {
    const gz = await gzipBuffer(Buffer.alloc(0));
    expect(gz.toString('hex')).toBe(`${gzipHeader(6).toString('hex')}0300${'00'.repeat(8)}`);
  });

  it('gives the same bytes whatever the write sizes and the concurrency', async () => {
    const data = mixed(20 * CHUNK + 99, 7);
    const a = await gzipBuffer(data, { chunkSize: CHUNK, concurrency: 1 });
    const b = await gzipWrites(split(data, [13, 4096, 77_777, 1]), { chunkSize: CHUNK, concurrency: 8 });
    const c = await gzipWrites(split(data, [CHUNK]), { chunkSize: CHUNK, concurrency: 2 });
    const d = await gzipWrites(split(data, [3 * CHUNK + 5]), { chunkSize: CHUNK, concurrency: 3 });
    expect(b.equals(a)).toBe(true);
    expect(c.equals(a)).toBe(true);
    expect(d.equals(a)).toBe(true);
    expect(a.equals(reference(data, 6, CHUNK))).toBe(true);
  });

  it('takes many tiny writes', async () => {
    const data = text(200 * KiB, 9);
    const gz = await gzipWrites(split(data, [1, 2, 3, 5, 8, 13]), { chunkSize: 16 * KiB });
    expect(gz.equals(await gzipBuffer(data, { chunkSize: 16 * KiB }))).toBe(true);
    expectGunzips(gz, data);
  });

  it('sets XFL by level exactly as zlib.gzipSync does', async () => {
    const data = text(100_000);
    expect((await gzipBuffer(data, { level: 1 }))[8]).toBe(4);
    expect((await gzipBuffer(data, { level: 6 }))[8]).toBe(0);
    expect((await gzipBuffer(data, { level: 9 }))[8]).toBe(2);
    for (let level = 0; level <= 9; level++) {
      const header = gzipHeader(level);
      expect(header.length).toBe(GZIP_HEADER_SIZE);
      expect(header.equals(zlib.gzipSync(data, { level }).subarray(0, GZIP_HEADER_SIZE))).toBe(true);
      expect((await gzipBuffer(data, { level })).subarray(0, GZIP_HEADER_SIZE).equals(header)).toBe(true);
    }
  });

  it('writes stored blocks at level 0', async () => {
    const data = mixed(3 * CHUNK + 5);
    const stored = await gzipWrites(split(data, [7, MiB]), { level: 0, chunkSize: CHUNK });
    expect(stored.length).toBeGreaterThan(data.length + GZIP_HEADER_SIZE + GZIP_TRAILER_SIZE);
    expect(stored.length).toBeLessThan(data.length * 1.001 + 100);
    expectGunzips(stored, data);
    expect(stored.equals(reference(data, 0, CHUNK))).toBe(true);
  });

  it.each([1, 6, 9])('compresses within 1 percent of a single zlib stream at level %i (the dictionary carries over)', async (level) => {
    const data = text(6 * MiB, 3);
    const ours = await gzipBuffer(data, { level });
    const single = zlib.gzipSync(data, { level });
    expect(ours.length / single.length).toBeLessThan(1.01);
    // Small chunks too: without the dictionary each 64 KiB chunk would restart from nothing.
    const small = await gzipBuffer(data, { level, chunkSize: CHUNK });
    expect(small.length / single.length).toBeLessThan(1.01);
  });

  it('passes a source error on and destroys the stream', async () => {
    let sent = 0;
    const src = new Readable({
      read() {
        if (sent++ < 3) this.push(noise(CHUNK + 1, sent));
        else this.destroy(new Error('disk on fire'));
      },
    });
    const gz = new ParallelGzip({ chunkSize: CHUNK });
    await expect(pipeline(src, gz, new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow('disk on fire');
    expect(gz.destroyed).toBe(true);
  });

  it('destroys the stream when zlib fails', async () => {
    const real = zlib.deflateRaw;
    let calls = 0;
    vi.spyOn(zlib, 'deflateRaw').mockImplementation(((buf: Buffer, opts: zlib.ZlibOptions, cb: zlib.CompressCallback) => {
      if (++calls === 3) return void setImmediate(() => cb(new Error('zlib exploded'), Buffer.alloc(0)));
      real(buf, opts, cb);
    }) as unknown as typeof zlib.deflateRaw);
    const gz = new ParallelGzip({ chunkSize: CHUNK, concurrency: 2 });
    await expect(gzipWritesInto(gz, split(mixed(10 * CHUNK), [CHUNK / 2]))).rejects.toThrow('zlib exploded');
    expect(gz.destroyed).toBe(true);
  });

  it('stops quietly when the consumer fails mid-stream', async () => {
    const gz = new ParallelGzip({ chunkSize: CHUNK, concurrency: 4 });
    let n = 0;
    const sink = new Writable({ write: (_c, _e, cb) => cb(++n === 3 ? new Error('sink full') : null) });
    await expect(pipeline(Readable.from(split(noise(40 * CHUNK), [CHUNK / 4])), gz, sink)).rejects.toThrow('sink full');
    await sleep(100); // compressions still in flight finish and are dropped without an error
    expect(gz.destroyed).toBe(true);
  });

  it('rejects bad options', () => {
    expect(() => new ParallelGzip({ level: 10 })).toThrow(RangeError);
    expect(() => new ParallelGzip({ level: 1.5 })).toThrow(RangeError);
    expect(() => new ParallelGzip({ chunkSize: 0 })).toThrow(RangeError);
    expect(() => new ParallelGzip({ concurrency: 0 })).toThrow(RangeError);
    expect(() => gzipHeader(-1)).toThrow(RangeError);
    expect(new ParallelGzip().concurrency).toBeGreaterThanOrEqual(2);
  });

  describe('backpressure', () => {
    /** Counts the bytes handed to zlib: scheduled minus consumed is what the transform holds. */
    function countScheduled(): { bytes: number } {
      const counter = { bytes: 0 };
      const real = zlib.deflateRaw;
      vi.spyOn(zlib, 'deflateRaw').mockImplementation(((buf: Buffer, opts: zlib.ZlibOptions, cb: zlib.CompressCallback) => {
        counter.bytes += buf.length;
        real(buf, opts, cb);
      }) as unknown as typeof zlib.deflateRaw);
      return counter;
    }

    /** A consumer that takes one pushed buffer per ~millisecond, recording the most ever held upstream. */
    function slowSink(onWrite: (n: number) => void): Writable {
      return new Writable({
        highWaterMark: 1,
        write: (c: Buffer, _e, cb) => {
          onWrite(c.length);
          setTimeout(cb, 1);
        },
      });
    }

    it('holds at most (concurrency + 2) chunks while 64 MiB stream through a slow consumer', async () => {
      // Incompressible input: compressed bytes ≈ input bytes, so the byte counts compare directly.
      const chunkSize = 256 * KiB;
      const concurrency = 4;
      const block = noise(64 * KiB, 11);
      const total = 64 * MiB;
      const scheduled = countScheduled();
      let produced = 0;
      let consumed = 0;
      let maxAhead = 0;
      let maxInside = 0;
      const src = new Readable({
        read() {
          if (produced >= total) return void this.push(null);
          produced += block.length;
          this.push(block);
          maxAhead = Math.max(maxAhead, produced - consumed);
        },
      });
      const gz = new ParallelGzip({ level: 1, chunkSize, concurrency });
      let maxReadable = 0;
      await pipeline(
        src,
        gz,
        slowSink((n) => {
          consumed += n;
          maxReadable = Math.max(maxReadable, gz.readableLength);
          maxInside = Math.max(maxInside, scheduled.bytes - consumed);
        }),
      );
      expect(consumed).toBeGreaterThan(total);
      // In flight + unread output, then the partial chunk, the write being cut and the streams' small buffers.
      expect(maxInside).toBeLessThanOrEqual((concurrency + 1) * chunkSize);
      expect(maxAhead).toBeLessThanOrEqual((concurrency + 2) * chunkSize + 4 * block.length);
      expect(maxReadable).toBeLessThanOrEqual((concurrency + 1) * chunkSize + 4 * KiB);
    });

    it('cuts one huge write into chunks only as fast as the consumer reads', async () => {
      const chunkSize = 128 * KiB;
      const concurrency = 3;
      const data = noise(16 * MiB, 12);
      const scheduled = countScheduled();
      let consumed = 0;
      let maxInside = 0;
      const gz = new ParallelGzip({ level: 1, chunkSize, concurrency });
      const out: Buffer[] = [];
      const sink = slowSink((n) => {
        consumed += n;
        maxInside = Math.max(maxInside, scheduled.bytes - consumed);
      });
      const collect = new Writable({
        highWaterMark: 1,
        write: (c: Buffer, e, cb) => (out.push(c), sink.write(c, e) ? cb() : sink.once('drain', cb)),
      });
      await pipeline(Readable.from([data]), gz, collect);
      expect(maxInside).toBeLessThanOrEqual((concurrency + 1) * chunkSize);
      expect(zlib.gunzipSync(Buffer.concat(out)).equals(data)).toBe(true);
    });
  });
});
