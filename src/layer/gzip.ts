/**
 * Parallel gzip, pigz's method, in one valid gzip member.
 *
 * The input is cut into fixed-size chunks. Each chunk is compressed as raw deflate with a sync flush
 * (the last one with Z_FINISH), primed with the previous chunk's last 32 KiB as its dictionary, so the
 * ratio stays close to a single stream. The outputs are concatenated between a fixed 10-byte header
 * (MTIME 0, OS 3) and the trailer (CRC-32 and length of the whole input). Chunks compress on the libuv
 * thread pool, so all cores work; at most `concurrency` chunks are in flight, so memory stays flat.
 *
 * Byte stability: each chunk's output depends only on its bytes, its dictionary, the level and the
 * chunk size, never on scheduling. Same input + same level and chunk size + same ocitool version and
 * Node/zlib build = same bytes. The uncompressed tar (the diffID) is stable everywhere.
 */
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

export const DEFAULT_CHUNK_SIZE = 1 << 20;
export const DEFAULT_LEVEL = 6;
const DICT_SIZE = 32 * 1024;

export interface ParallelGzipOptions {
  level?: number;
  chunkSize?: number;
  concurrency?: number;
}

/** The 10-byte gzip header ocitool writes: no name, MTIME 0, XFL as zlib sets it, OS 3 (Unix). */
export function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0x03]);
}

function deflateChunk(data: Buffer, dictionary: Buffer | undefined, level: number, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // An output buffer that holds the whole result (deflate's bound plus slack): one trip through the
    // thread pool per chunk instead of one per 16 KiB of output, zlib's default.
    const chunkSize = Math.max(1024, data.length + (data.length >> 8) + 1024);
    const opts: zlib.ZlibOptions = { level, memLevel: 9, chunkSize, finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH };
    if (dictionary && dictionary.length > 0) opts.dictionary = dictionary;
    zlib.deflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(out)));
  });
}

export class ParallelGzip extends Transform {
  private readonly level: number;
  private readonly chunkSize: number;
  private readonly concurrency: number;
  private parts: Buffer[] = [];
  private partsLength = 0;
  private prevTail: Buffer | undefined;
  private crc = 0;
  private total = 0;
  private headerSent = false;
  /** Compressions in flight, in output order. */
  private readonly queue: Promise<Buffer>[] = [];

  constructor(opts: ParallelGzipOptions = {}) {
    super({ highWaterMark: 1 << 20 });
    this.level = opts.level ?? DEFAULT_LEVEL;
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.concurrency = Math.max(2, opts.concurrency ?? availableParallelism() + 1);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.total += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const take = Math.min(this.chunkSize - this.partsLength, chunk.length - off);
      this.parts.push(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take));
      this.partsLength += take;
      off += take;
      if (this.partsLength === this.chunkSize) this.schedule(false);
    }
    this.drain(this.concurrency).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.schedule(true);
    this.drain(0)
      .then(() => {
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(this.crc >>> 0, 0);
        trailer.writeUInt32LE(this.total % 2 ** 32, 4);
        this.push(trailer);
        cb();
      }, cb);
  }

  private schedule(last: boolean): void {
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsLength);
    this.parts = [];
    this.partsLength = 0;
    const p = deflateChunk(data, this.prevTail, this.level, last);
    p.catch(() => undefined); // observed when drained
    this.queue.push(p);
    // Copy the tail: `data` may be a view of a caller's buffer that is reused.
    this.prevTail = Buffer.from(data.subarray(Math.max(0, data.length - DICT_SIZE)));
  }

  /** Pushes finished chunks in order until at most `keep` remain in flight. */
  private async drain(keep: number): Promise<void> {
    while (this.queue.length > keep) {
      const out = await this.queue.shift()!;
      if (!this.headerSent) {
        this.push(gzipHeader(this.level));
        this.headerSent = true;
      }
      this.push(out);
    }
  }
}

/** Compresses one buffer with ParallelGzip (small blobs and tests). */
export async function gzipBuffer(data: Buffer, opts: ParallelGzipOptions = {}): Promise<Buffer> {
  const gz = new ParallelGzip(opts);
  const chunks: Buffer[] = [];
  gz.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.on('end', resolve);
    gz.on('error', reject);
  });
  gz.end(data);
  await done;
  return Buffer.concat(chunks);
}
