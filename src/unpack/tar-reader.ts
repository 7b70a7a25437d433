/**
 * A streaming tar reader for layers: ustar, GNU (long names `L`/`K`, base-256 numbers) and PAX (`x`
 * per entry, `g` global) headers, with PAX values kept as raw bytes, so that binary extended attributes
 * (`SCHILY.xattr.security.capability`, say) survive, which general-purpose readers decode as text.
 *
 * `readTar(source)` yields entries one at a time; an entry's `body` must be read to its end (or
 * `skip()`ped) before the next entry is asked for.
 */
import { OciToolError } from '../util/errors.js';
import { paxRecords, tarChecksumOk, tarNumber as num, tarString as str } from '../util/tar-fields.js';

export interface TarHeader {
  name: string;
  type: 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.NAME` records, as raw bytes. */
  xattrs: Map<string, Buffer>;
}

export interface TarItem {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
  /** Discards what is left of the body. */
  skip(): Promise<void>;
}

const BLOCK = 512;

/** Reads exact byte counts from a stream of chunks. */
class Bytes {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.have += r.value.length;
      }
    }
    return this.have >= n;
  }

  /** Exactly n bytes, or undefined at a clean end (nothing left); throws when cut short. */
  async take(n: number, what: string): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (this.have === 0) return undefined;
      throw new OciToolError('INVALID_ARCHIVE', `layer tar is truncated (${what})`);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.have -= n;
    return out;
  }

  /** The next n bytes as they come, in pieces. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.have === 0 && !(await this.fill(1))) throw new OciToolError('INVALID_ARCHIVE', `layer tar is truncated (${what})`);
      const c = this.chunks[0]!;
      const k = Math.min(c.length, left);
      yield k === c.length ? c : c.subarray(0, k);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.have -= k;
      left -= k;
    }
  }
}

const TYPES: Record<string, TarHeader['type']> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'character-device', '4': 'block-device', '5': 'directory', '6': 'fifo' };

export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarItem> {
  const bytes = new Bytes(source[Symbol.asyncIterator]());
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, Buffer>();
  let global = new Map<string, Buffer>();
  for (;;) {
    const h = await bytes.take(BLOCK, 'a header');
    if (!h || h.every((b) => b === 0)) return; // end of archive
    if (!tarChecksumOk(h)) throw new OciToolError('INVALID_ARCHIVE', 'layer tar is damaged (bad header checksum)');
    const flag = String.fromCharCode(h[156]!);
    const records = new Map([...global, ...pax]);
    const size = records.has('size') ? Number(records.get('size')!.toString()) : num(h, 124, 12);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      const data = (await bytes.take(padded, 'an extended header'))!.subarray(0, size);
      if (flag === 'L') longName = str(data, 0, size);
      else if (flag === 'K') longLink = str(data, 0, size);
      else if (flag === 'x') pax = paxRecords(data);
      else global = paxRecords(data);
      continue;
    }
    const text = (k: string): string | undefined => records.get(k)?.toString('utf8');
    const prefix = h.toString('latin1', 257, 262) === 'ustar' ? str(h, 345, 155) : '';
    const base = str(h, 0, 100);
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of records) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice(13), v);
    const type = TYPES[flag] ?? 'other';
    const header: TarHeader = {
      name: text('path') ?? longName ?? (prefix ? `${prefix}/${base}` : base),
      type,
      mode: num(h, 100, 8),
      uid: text('uid') !== undefined ? Number(text('uid')) : num(h, 108, 8),
      gid: text('gid') !== undefined ? Number(text('gid')) : num(h, 116, 8),
      size: type === 'file' ? size : 0,
      mtime: text('mtime') !== undefined ? Math.floor(Number(text('mtime'))) : num(h, 136, 12),
      linkname: text('linkpath') ?? longLink ?? str(h, 157, 100),
      devmajor: num(h, 329, 8),
      devminor: num(h, 337, 8),
      xattrs,
    };
    longName = undefined;
    longLink = undefined;
    pax = new Map();
    // The data (for files; other types with a size have it skipped), then the padding.
    let consumed = false;
    const what = `the data of ${JSON.stringify(header.name)}`;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (consumed) return;
      consumed = true;
      yield* bytes.stream(size, what);
      await bytes.take(padded - size, what);
    };
    const skip = async (): Promise<void> => {
      for await (const _ of body()) void _;
    };
    yield { header, body: body(), skip };
    await skip();
  }
}
