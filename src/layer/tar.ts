import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import { BLOCK, END_OF_ARCHIVE, encodeHeader, padding, type TarHeader, type TarTypeflag } from './tar-header.js';

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

/** Reads a whole small file straight into `buf` at `pos`; returns the bytes read (up to `max`). */
function readInto(path: string, buf: Buffer, pos: number, max: number): number {
  const fd = openSync(path, 'r');
  try {
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, pos + n, max - n, null);
      if (r === 0) return n;
      n += r;
      if (n === max) return n;
    }
  } finally {
    closeSync(fd);
  }
}

async function* tarChunks(entries: AsyncIterable<LayerEntry>): AsyncGenerator<Buffer> {
  // Headers, small files and padding are written straight into ~1 MiB batch buffers: one copy per
  // byte, no buffer per file. Room for a header, a whole small file, one byte more (to see a file
  // that grew) and its padding always remains when a new entry starts.
  const CAP = BATCH + SMALL_FILE + 16 * 1024;
  let buf = Buffer.allocUnsafe(CAP);
  let pos = 0;
  const take = (): Buffer => {
    const out = buf.subarray(0, pos);
    buf = Buffer.allocUnsafe(CAP);
    pos = 0;
    return out;
  };
  const put = (b: Buffer): void => {
    b.copy(buf, pos);
    pos += b.length;
  };
  for await (const e of entries) {
    const h = tarHeader(e);
    const headers = encodeHeader(h);
    const headerLen = headers.reduce((n, b) => n + b.length, 0);
    if (pos + headerLen > CAP - SMALL_FILE - BLOCK) yield take();
    for (const b of headers) put(b);
    if (e.type === 'file') {
      if (e.content !== undefined) {
        if (e.content.length !== h.size) throw ioError(e, new Error(`content is ${e.content.length} bytes, header says ${h.size}`));
        if (pos + h.size + BLOCK > CAP) yield take();
        put(e.content);
      } else if (e.source !== undefined && h.size <= SMALL_FILE) {
        // Synchronous on purpose: from the page cache this takes microseconds, while an async read
        // needs several trips through libuv's thread pool, queued behind the compressor's jobs.
        let n: number;
        try {
          n = readInto(e.source, buf, pos, h.size + 1);
        } catch (err) {
          throw ioError(e, err);
        }
        if (n !== h.size) throw ioError(e, new Error(`changed while being read (${n > h.size ? 'more than ' : ''}${Math.min(n, h.size)} bytes, expected ${h.size})`));
        pos += n;
      } else if (e.source !== undefined) {
        if (pos > 0) yield take();
        yield* streamFile(e, h.size);
      }
      const pad = padding(h.size);
      pad.copy(buf, pos);
      pos += pad.length;
    }
    if (pos >= BATCH) yield take();
  }
  put(END_OF_ARCHIVE);
  yield take();
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
