import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pack as tarPack, type Pack } from 'tar-stream';

type Header = Parameters<Pack['entry']>[0];
import { OciToolError } from '../util/errors.js';

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

/** Files up to this size are read whole (and ahead); larger ones stream. */
const SMALL_FILE = 256 * 1024;
/** How many entries ahead small files are read, to overlap disk reads with packing and compression. */
const READ_AHEAD = 32;

const TYPE: Record<LayerEntryType, Header['type']> = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  hardlink: 'link',
  char: 'character-device',
  block: 'block-device',
  fifo: 'fifo',
};

function header(e: LayerEntry): Header {
  const h: Header = {
    name: e.name,
    type: TYPE[e.type],
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    uname: '',
    gname: '',
    mtime: new Date(e.mtime * 1000),
    size: e.type === 'file' ? (e.size ?? e.content?.length ?? 0) : 0,
  };
  if (e.linkname !== undefined) h.linkname = e.linkname;
  if (e.devmajor !== undefined) h.devmajor = e.devmajor;
  if (e.devminor !== undefined) h.devminor = e.devminor;
  return h;
}

interface Prepared {
  entry: LayerEntry;
  data?: Promise<Buffer>;
}

async function* readAhead(entries: AsyncIterable<LayerEntry>): AsyncGenerator<Prepared> {
  const window: Prepared[] = [];
  for await (const entry of entries) {
    const p: Prepared = { entry };
    if (entry.type === 'file' && entry.content === undefined && entry.source !== undefined && (entry.size ?? 0) <= SMALL_FILE) {
      p.data = readFile(entry.source);
      p.data.catch(() => undefined); // handled when awaited
    }
    window.push(p);
    if (window.length >= READ_AHEAD) yield window.shift()!;
  }
  yield* window;
}

function addBuffered(pack: Pack, h: Header, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (data === undefined) pack.entry(h, cb);
    else pack.entry(h, data, cb);
  });
}

async function addStreamed(pack: Pack, h: Header, source: string): Promise<void> {
  let w!: ReturnType<Pack['entry']>;
  const done = new Promise<void>((resolve, reject) => {
    w = pack.entry(h, (err) => (err ? reject(err) : resolve()));
  });
  for await (const chunk of createReadStream(source, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    if (!w.write(chunk)) await once(w, 'drain');
  }
  w.end(Buffer.alloc(0));
  await done;
}

/**
 * Packs entries into an uncompressed tar stream with tar-stream: USTAR headers, PAX where a name or
 * link target does not fit, no user or group names. Content is read as it is packed: small files a
 * few entries ahead, large ones streamed, so memory stays flat whatever the tree's size.
 */
export function packLayer(entries: AsyncIterable<LayerEntry>): Readable {
  const pack = tarPack();
  const run = async (): Promise<void> => {
    for await (const { entry, data } of readAhead(entries)) {
      const h = header(entry);
      try {
        if (entry.type !== 'file') await addBuffered(pack, h);
        else if (entry.content !== undefined) await addBuffered(pack, h, entry.content);
        else if (data !== undefined) {
          const buf = await data;
          if (buf.length !== h.size) throw new Error(`changed while being read (${buf.length} bytes, expected ${h.size})`);
          await addBuffered(pack, h, buf);
        } else if (entry.source !== undefined) await addStreamed(pack, h, entry.source);
        else await addBuffered(pack, h, Buffer.alloc(0));
      } catch (err) {
        const msg = (err as Error).message === 'Size mismatch' ? 'changed while being read' : (err as Error).message;
        throw new OciToolError('IO', `${entry.source ?? entry.name}: ${msg}`, { cause: err });
      }
    }
    pack.finalize();
  };
  const out = Readable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false });
  run().catch((err: unknown) => {
    pack.destroy(err as Error);
  });
  return out;
}
