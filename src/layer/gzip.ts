/**
 * Parallel gzip, pigz's method, producing one valid gzip member.
 *
 * The input is cut into fixed-size chunks (`chunkSize`, 1 MiB by default). Each chunk is compressed as
 * raw deflate ending in a sync flush (the last chunk, possibly empty, ends with Z_FINISH), primed with
 * the last 32 KiB of input before it as its deflate dictionary, so the ratio stays close to that of a
 * single stream. The outputs are concatenated between a fixed 10-byte header and the 8-byte trailer
 * (CRC-32 and length mod 2^32 of the whole input, little-endian). The CRC is computed in order on the
 * main thread (`zlib.crc32`); the chunks compress on the libuv thread pool (`zlib.deflateRaw`), so
 * several cores work at once (as many as libuv's pool has threads: 4 unless UV_THREADPOOL_SIZE says
 * otherwise). At most `concurrency` chunks are between "scheduled" and "pushed", and no new chunk is
 * scheduled while the readable side holds a chunk's worth of unread output (push() returned false and
 * _read has not been called since), so memory stays flat whatever the input size: about
 * chunkSize × (2 × concurrency + 2), each chunk in flight holding its input and its output buffer.
 *
 * Header: 1f 8b 08, FLG 0 (no name, no extra), MTIME 0, XFL as zlib writes it (2 for level 9, 4 for
 * levels 0 and 1, else 0), OS 3 (Unix) — byte for byte the header of `zlib.gzipSync(data, { level })`.
 *
 * Byte-stability contract. A chunk's output depends only on its bytes, its dictionary (the input
 * before it), the level, memLevel and whether it is the last one — never on how the input was split
 * into writes, on `concurrency` or on thread scheduling. So: same ocitool version (this algorithm and
 * its settings) + same Node/zlib build + same level and chunk size + same input = same bytes, hence the
 * same layer digest. Another zlib build (a different Node, a distribution's system zlib, zlib-ng) may
 * pick other matches and give other, equally valid, bytes; the output is also not identical to
 * `gzip -6` or `zlib.gzipSync`. Only the uncompressed tar (the diffID) is stable everywhere.
 *
 * Buffers written to the stream are referenced (not copied) until their chunks are compressed: as with
 * any Node stream, do not modify a buffer after writing it.
 */
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

/** gzip level used when none is given (zlib's and gzip(1)'s default). */
export const DEFAULT_LEVEL = 6;
/** Uncompressed bytes per independently compressed chunk (part of the byte-stability contract). */
export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** Deflate's window: how much preceding input primes each chunk. */
export const DICTIONARY_SIZE = 32 * 1024;
/** zlib memLevel for every chunk (9: the largest hash table; part of the byte-stability contract). */
export const MEM_LEVEL = 9;
export const GZIP_HEADER_SIZE = 10;
export const GZIP_TRAILER_SIZE = 8;
/** gzip OS byte: Unix, as zlib writes it on Unix builds. */
export const GZIP_OS_UNIX = 3;
/** XFL: compressor used maximum compression (level 9). */
export const GZIP_XFL_SLOWEST = 2;
/** XFL: compressor used the fastest algorithm (levels 0 and 1, as zlib sets it). */
export const GZIP_XFL_FASTEST = 4;

export interface ParallelGzipOptions {
  /** 0–9 (default 6). Level 0 writes stored blocks. */
  level?: number;
  /** Uncompressed bytes per chunk (default 1 MiB). */
  chunkSize?: number;
  /** Chunks scheduled but not yet pushed, at most (default cores + 1, at least 2). */
  concurrency?: number;
}

/** Default `concurrency`: one chunk per core and one more, so no core idles while the oldest chunk finishes (measured as fast as 2 per core end to end, with less memory). */
export function defaultConcurrency(): number {
  return Math.max(2, availableParallelism() + 1);
}

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`ParallelGzip: ${name} must be an integer from ${min} to ${max}, got ${v}`);
  return v;
}

/** The 10-byte gzip header ocitool writes for `level`; identical to zlib.gzipSync's. */
export function gzipHeader(level: number): Buffer {
  checkInt('level', level, 0, 9);
  const xfl = level === 9 ? GZIP_XFL_SLOWEST : level < 2 ? GZIP_XFL_FASTEST : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, GZIP_OS_UNIX]);
}

/** Room for a chunk's whole compressed output (above deflate's bound, even for stored blocks). */
function outputRoom(n: number): number {
  return n + (n >> 8) + 1024;
}

interface Slot {
  out: Buffer | undefined;
}

export class ParallelGzip extends Transform {
  readonly level: number;
  readonly chunkSize: number;
  readonly concurrency: number;

  /** Partial chunk being gathered from writes that do not cover a whole chunk. */
  private acc: Buffer | undefined;
  private accLen = 0;
  /** Last DICTIONARY_SIZE bytes of input scheduled so far (a copy). */
  private dict: Buffer | undefined;
  private crc = 0;
  private total = 0;
  /** Chunks scheduled and not yet pushed, in output order. */
  private readonly queue: Slot[] = [];
  private headerPushed = false;
  /** The write being cut into chunks, while it waits for a free slot. */
  private input: Buffer | undefined;
  private inputOff = 0;
  private inputCb: TransformCallback | undefined;
  private flushCb: TransformCallback | undefined;
  private finalScheduled = false;
  /** The last push() found the readable buffer full: schedule nothing more until _read asks. */
  private backedUp = false;

  constructor(opts: ParallelGzipOptions = {}) {
    const chunkSize = checkInt('chunkSize', opts.chunkSize ?? DEFAULT_CHUNK_SIZE, 1, 1 << 30);
    // Writable side: Node's default (one write is always accepted beyond it; the partial chunk is the
    // real input buffer). Readable side: one chunk of unread output stops the scheduling of new chunks.
    super({ readableHighWaterMark: chunkSize });
    this.chunkSize = chunkSize;
    this.level = checkInt('level', opts.level ?? DEFAULT_LEVEL, 0, 9);
    this.concurrency = checkInt('concurrency', opts.concurrency ?? defaultConcurrency(), 1, 1 << 16);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.total += chunk.length;
    this.input = chunk;
    this.inputOff = 0;
    this.inputCb = cb;
    this.feed();
  }

  override _flush(cb: TransformCallback): void {
    this.flushCb = cb;
    this.finish();
  }

  override _read(size: number): void {
    // The consumer wants output (Readable's protocol: it calls _read again only after our next push).
    this.backedUp = false;
    super._read(size);
    this.feed();
    this.finish();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // Compressions in flight complete on the thread pool and are dropped (see done()).
    this.queue.length = 0;
    this.input = this.inputCb = this.flushCb = undefined;
    this.acc = this.dict = undefined;
    cb(err);
  }

  private canSchedule(): boolean {
    return !this.destroyed && !this.backedUp && this.queue.length < this.concurrency;
  }

  /** Cuts the pending write into chunks while slots are free; calls its callback once all of it is taken. */
  private feed(): void {
    const input = this.input;
    if (!input) return;
    for (;;) {
      if (this.accLen === this.chunkSize) {
        if (!this.canSchedule()) return;
        const full = this.acc!;
        this.acc = undefined;
        this.accLen = 0;
        this.schedule(full, false);
      }
      const left = input.length - this.inputOff;
      if (left === 0) break;
      if (this.accLen === 0 && left >= this.chunkSize) {
        // A whole chunk inside this write: compress a view of it, no copy.
        if (!this.canSchedule()) return;
        this.schedule(input.subarray(this.inputOff, this.inputOff + this.chunkSize), false);
        this.inputOff += this.chunkSize;
      } else {
        this.acc ??= Buffer.allocUnsafe(this.chunkSize);
        const n = Math.min(left, this.chunkSize - this.accLen);
        input.copy(this.acc, this.accLen, this.inputOff, this.inputOff + n);
        this.accLen += n;
        this.inputOff += n;
      }
    }
    const cb = this.inputCb!;
    this.input = this.inputCb = undefined;
    cb();
  }

  /** After the last write: schedules the remainder (possibly empty) with Z_FINISH, then the trailer. */
  private finish(): void {
    const cb = this.flushCb;
    if (!cb || this.input) return;
    if (!this.finalScheduled) {
      if (!this.canSchedule()) return;
      this.finalScheduled = true;
      const rest = this.acc ? this.acc.subarray(0, this.accLen) : Buffer.alloc(0);
      this.acc = undefined;
      this.accLen = 0;
      this.schedule(rest, true);
      return;
    }
    if (this.queue.length > 0) return;
    this.flushCb = undefined;
    const trailer = Buffer.allocUnsafe(GZIP_TRAILER_SIZE);
    trailer.writeUInt32LE(this.crc >>> 0, 0);
    trailer.writeUInt32LE(this.total % 0x1_0000_0000, 4);
    this.push(trailer);
    cb();
  }

  private schedule(data: Buffer, last: boolean): void {
    const slot: Slot = { out: undefined };
    this.queue.push(slot);
    const dictionary = this.dict;
    // Copied: `data` may be a view of a large caller buffer (or the partial-chunk buffer).
    this.dict = Buffer.from(
      data.length >= DICTIONARY_SIZE || !dictionary
        ? data.subarray(Math.max(0, data.length - DICTIONARY_SIZE))
        : Buffer.concat([dictionary, data]).subarray(-DICTIONARY_SIZE),
    );
    const opts: zlib.ZlibOptions = {
      level: this.level,
      memLevel: MEM_LEVEL,
      // One trip through the thread pool per chunk (zlib's default would be one per 16 KiB of output).
      chunkSize: outputRoom(data.length),
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    };
    if (dictionary && dictionary.length > 0) opts.dictionary = dictionary;
    try {
      zlib.deflateRaw(data, opts, (err, out) => this.done(slot, err, out));
    } catch (err) {
      process.nextTick(() => this.done(slot, err as Error, Buffer.alloc(0)));
    }
  }

  private done(slot: Slot, err: Error | null, out: Buffer): void {
    if (this.destroyed) return;
    if (err) {
      this.destroy(err);
      return;
    }
    // zlib hands back a view of its output buffer (sized for the whole chunk): keep only what is used.
    slot.out = out.length * 2 < out.buffer.byteLength ? Buffer.from(out) : out;
    this.pump();
  }

  /** Pushes finished chunks strictly in order, then lets waiting input or the flush go on. */
  private pump(): void {
    for (let head = this.queue[0]; head?.out; head = this.queue[0]) {
      this.queue.shift();
      if (!this.headerPushed) {
        this.headerPushed = true;
        this.push(gzipHeader(this.level));
      }
      this.backedUp = !this.push(head.out);
      if (this.destroyed) return;
    }
    this.feed();
    this.finish();
  }
}

/** Compresses one buffer with ParallelGzip (small blobs and tests). */
export async function gzipBuffer(data: Uint8Array, opts: ParallelGzipOptions = {}): Promise<Buffer> {
  const gz = new ParallelGzip(opts);
  const chunks: Buffer[] = [];
  gz.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve, reject) => {
    gz.once('end', resolve);
    gz.once('error', reject);
    gz.end(data);
  });
  return Buffer.concat(chunks);
}
