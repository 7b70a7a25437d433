import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarHeader, type TarTypeflag } from './tar-header.js';

export type LayerEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

/** One tar entry of a layer, owner and time already normalised. */
export interface LayerEntry {
  /** Path inside the archive: no leading '/', no trailing '/'. */
  name: string;
  type: LayerEntryType;
  /** Permission bits (setuid/setgid/sticky included). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Regular files: content length. */
  size?: number;
  /** Symlink target, or for hardlinks the archive path of the earlier entry. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Regular files: where to read the content (checked against `size`). */
  source?: string;
  /** Regular files: content in memory (whiteouts are empty files). */
  content?: Buffer;
}

/** Files up to this size are read whole; larger ones stream in 1 MiB reads. */
const SMALL_FILE = 256 * 1024;
/** Small pieces are gathered into batches of about this size before they go downstream. */
const BATCH = 1 << 20;

const TYPEFLAG: Record<LayerEntryType, TarTypeflag> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

function tarHeader(e: LayerEntry): TarHeader {
  const h: TarHeader = {
    name: e.type === 'dir' ? `${e.name}/` : e.name,
    typeflag: TYPEFLAG[e.type],
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.type === 'file' ? (e.size ?? e.content?.length ?? 0) : 0,
    mtime: e.mtime,
  };
  if (e.linkname !== undefined) h.linkname = e.linkname;
  if (e.type === 'char' || e.type === 'block') {
    h.devmajor = e.devmajor ?? 0;
    h.devminor = e.devminor ?? 0;
  }
  return h;
}

function ioError(e: LayerEntry, err: unknown): OciToolError {
  return new OciToolError('IO', `${e.source ?? e.name}: ${(err as Error).message}`, { cause: err });
}

async function* streamFile(e: LayerEntry, size: number): AsyncGenerator<Buffer> {
  const fh = await open(e.source!, 'r').catch((err: unknown) => {
    throw ioError(e, err);
  });
  try {
    let off = 0;
    while (off < size) {
      const n = Math.min(1 << 20, size - off);
      const buf = Buffer.allocUnsafe(n);
      const { bytesRead } = await fh.read(buf, 0, n, off);
      if (bytesRead === 0) throw ioError(e, new Error(`changed while being read (${off} bytes, expected ${size})`));
      off += bytesRead;
      yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
    }
    const probe = await fh.read(Buffer.alloc(1), 0, 1, off);
    if (probe.bytesRead !== 0) throw ioError(e, new Error(`changed while being read (more than ${size} bytes)`));
  } finally {
    await fh.close();
  }
}

async function* tarChunks(entries: AsyncIterable<LayerEntry>): AsyncGenerator<Buffer> {
  let batch: Buffer[] = [];
  let batchLen = 0;
  const add = (b: Buffer): void => {
    if (b.length === 0) return;
    batch.push(b);
    batchLen += b.length;
  };
  const flush = (): Buffer => {
    const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchLen);
    batch = [];
    batchLen = 0;
    return out;
  };
  for await (const e of entries) {
    const h = tarHeader(e);
    let body: Buffer | undefined;
    if (e.type === 'file') {
      if (e.content !== undefined) body = e.content;
      else if (e.source !== undefined && h.size <= SMALL_FILE) {
        // Synchronous on purpose: from the page cache this takes microseconds, while an async read
        // needs several trips through libuv's thread pool, queued behind the compressor's jobs.
        try {
          body = readFileSync(e.source);
        } catch (err) {
          throw ioError(e, err);
        }
      } else if (e.source === undefined) body = Buffer.alloc(0);
      if (body !== undefined && body.length !== h.size) throw ioError(e, new Error(`changed while being read (${body.length} bytes, expected ${h.size})`));
    }
    for (const b of encodeHeader(h)) add(b);
    if (body !== undefined || e.type !== 'file') {
      if (body) add(body);
    } else {
      if (batchLen > 0) yield flush();
      yield* streamFile(e, h.size);
    }
    if (e.type === 'file') add(padding(h.size));
    if (batchLen >= BATCH) yield flush();
  }
  add(END_OF_ARCHIVE);
  yield flush();
}

/**
 * Packs entries into an uncompressed tar stream (USTAR, PAX where needed; see tar-header.ts).
 * Content is read as it is packed, small files whole and large ones streamed, and small pieces are
 * batched into ~1 MiB chunks, so memory stays flat and downstream hashing and compression see few,
 * large chunks.
 */
export function packLayer(entries: AsyncIterable<LayerEntry>): Readable {
  return Readable.from(tarChunks(entries), { objectMode: false, highWaterMark: 1 });
}
