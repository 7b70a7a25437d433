/**
 * The one tar header decoder, under both readers (the archive index, which seeks, and the layer
 * reader, which streams). It reads ustar, GNU (long names `L`/`K`, base-256 numbers, `D` dump
 * directories) and PAX (`x` for the next entry, `g` global) headers, and refuses what would make a
 * reader misbehave:
 * - a name or link target over MAX_TAR_NAME bytes; PAX record sets (`x`, `g`, all global ones
 *   together) over MAX_TAR_EXTENDED bytes and `L`/`K` data over MAX_TAR_NAME, before they are read;
 * - sizes, ids and times that are not numbers (PAX `size`/`uid`/`gid`: decimal digits only), so that
 *   every header moves its reader forward by at least one block.
 * The ustar `prefix` field is a path prefix only in POSIX headers (magic `ustar\0`, version `00`):
 * GNU headers (`ustar  \0`) keep the access and change times there (`tar --format=gnu -G`).
 */
import { OciToolError } from './errors.js';
import { paxRecords, tarChecksumOk, tarNumber, tarString } from './tar-fields.js';

export const TAR_BLOCK = 512;
/** The longest name or link target accepted (Linux's PATH_MAX is 4 KiB). */
export const MAX_TAR_NAME = 64 * 1024;
/** The most PAX record bytes accepted in one extended header, and for all global ones together. */
export const MAX_TAR_EXTENDED = 8 * 1024 * 1024;

export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'other';

export interface TarEntryHeader {
  name: string;
  type: TarEntryType;
  /** The type flag as written (`0`, `5`, `D`, …). */
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data after the header (before its padding to a block). */
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.NAME` records, as raw bytes (shared: do not modify). */
  xattrs: Map<string, Buffer>;
}

/** What a header block says comes next. */
export type TarStep =
  | { kind: 'end' }
  /** An extended header: read `size` bytes (plus padding) and hand them to `extended()`. */
  | { kind: 'extended'; size: number }
  | { kind: 'entry'; header: TarEntryHeader };

const TYPES: Record<string, TarEntryType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'character-device', '4': 'block-device', '5': 'directory', D: 'directory', '6': 'fifo' };
const EXTENDED = new Set(['x', 'g', 'L', 'K']);
const DECIMAL = /^[0-9]+$/;
const PAX_TIME = /^-?[0-9]+(\.[0-9]*)?$/;
const NO_XATTRS: Map<string, Buffer> = new Map();
const XATTR = 'SCHILY.xattr.';
/** Linux's XATTR_LIST_MAX: the most bytes of attribute names one file can list. */
const MAX_XATTR_NAMES = 64 * 1024;

/** Rounds a data size up to whole blocks. */
export const padded = (size: number): number => Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;

/**
 * Decodes headers one block at a time, keeping what extended headers left for the entries after
 * them. `what` names the tar in errors (an archive file, a layer).
 */
export class TarDecoder {
  private flag = '';
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax = new Map<string, Buffer>();
  private paxXattrs = NO_XATTRS;
  private readonly global = new Map<string, Buffer>();
  private globalBytes = 0;
  private globalXattrs = NO_XATTRS;

  constructor(readonly what: string) {}

  fail(why: string): OciToolError {
    return new OciToolError('INVALID_ARCHIVE', `${this.what}: ${why}`);
  }

  /** Decodes the header block found at byte `at`. */
  next(h: Buffer, at: number): TarStep {
    if (h.every((b) => b === 0)) return { kind: 'end' };
    if (!tarChecksumOk(h)) throw this.fail(`not a tar file, or damaged (bad header checksum at byte ${at})`);
    const flag = String.fromCharCode(h[156]!);
    const field = (start: number, len: number, name: string): number => {
      const v = tarNumber(h, start, len);
      if (Number.isNaN(v)) throw this.fail(`header at byte ${at} has an invalid ${name} field`);
      return v;
    };
    if (EXTENDED.has(flag)) {
      const size = field(124, 12, 'size');
      const cap = flag === 'x' || flag === 'g' ? MAX_TAR_EXTENDED : MAX_TAR_NAME + 1;
      if (size < 0) throw this.fail(`header at byte ${at} has a negative size`);
      if (size > cap) throw this.fail(`${flag === 'x' || flag === 'g' ? 'PAX extended header' : 'GNU long name'} at byte ${at} claims ${size} bytes, over the ${cap}-byte limit`);
      this.flag = flag;
      return { kind: 'extended', size };
    }
    const magic = h.toString('latin1', 257, 265);
    const posix = magic === 'ustar\x0000';
    const base = tarString(h, 0, 100);
    const prefix = posix ? tarString(h, 345, 155) : '';
    const type = TYPES[flag] ?? 'other';
    const device = type === 'character-device' || type === 'block-device';
    const header: TarEntryHeader = {
      name: this.text('path') ?? this.longName ?? (prefix ? `${prefix}/${base}` : base),
      type,
      flag,
      mode: field(100, 8, 'mode'),
      uid: this.integer('uid') ?? field(108, 8, 'uid'),
      gid: this.integer('gid') ?? field(116, 8, 'gid'),
      size: this.integer('size', true) ?? field(124, 12, 'size'),
      mtime: this.time() ?? field(136, 12, 'mtime'),
      linkname: this.text('linkpath') ?? this.longLink ?? tarString(h, 157, 100),
      devmajor: device ? field(329, 8, 'devmajor') : 0,
      devminor: device ? field(337, 8, 'devminor') : 0,
      xattrs: this.xattrs(),
    };
    for (const k of ['size', 'mode', 'uid', 'gid'] as const) {
      if (header[k] < 0) throw this.fail(`header at byte ${at} (${JSON.stringify(header.name.slice(0, 200))}) has a negative ${k}`);
    }
    for (const [k, v] of [['name', header.name], ['link target', header.linkname]] as const) {
      if (Buffer.byteLength(v) > MAX_TAR_NAME) throw this.fail(`entry at byte ${at} has a ${k} over ${MAX_TAR_NAME} bytes`);
    }
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = new Map();
    this.paxXattrs = NO_XATTRS;
    return { kind: 'entry', header };
  }

  /** The data of the extended header `next()` just announced. */
  extended(data: Buffer): void {
    const flag = this.flag;
    this.flag = '';
    if (flag === 'L' || flag === 'K') {
      const s = tarString(data, 0, data.length);
      if (flag === 'L') this.longName = s;
      else this.longLink = s;
      return;
    }
    const records = paxRecords(data);
    if (typeof records === 'string') throw this.fail(records);
    if (flag === 'x') {
      this.pax = records;
      this.paxXattrs = this.withXattrs(NO_XATTRS, records);
      return;
    }
    for (const [k, v] of records) {
      const old = this.global.get(k);
      this.globalBytes += k.length + v.length - (old ? k.length + old.length : 0);
      this.global.set(k, v);
    }
    if (this.globalBytes > MAX_TAR_EXTENDED) throw this.fail(`global PAX records add up to more than ${MAX_TAR_EXTENDED} bytes`);
    this.globalXattrs = this.withXattrs(this.globalXattrs, records);
  }

  /**
   * `base` (never changed: entries already decoded share it) with the `SCHILY.xattr.` records of
   * `records` added. Their names may add up to MAX_XATTR_NAMES bytes, what Linux lists for a file.
   */
  private withXattrs(base: Map<string, Buffer>, records: Map<string, Buffer>): Map<string, Buffer> {
    let out = base;
    for (const [k, v] of records) {
      if (!k.startsWith(XATTR)) continue;
      if (out === base) out = new Map(base);
      out.set(k.slice(XATTR.length), v);
    }
    if (out !== base) {
      let names = 0;
      for (const k of out.keys()) names += Buffer.byteLength(k) + 1;
      if (names > MAX_XATTR_NAMES) throw this.fail(`extended attribute names add up to more than ${MAX_XATTR_NAMES} bytes`);
    }
    return out;
  }

  /** A PAX value for the next entry: its own record first, then a global one (not copied). An empty value unsets. */
  private raw(key: string, own = false): Buffer | undefined {
    const v = this.pax.has(key) || own ? this.pax.get(key) : this.global.get(key);
    return v && v.length > 0 ? v : undefined;
  }

  private text(key: string): string | undefined {
    return this.raw(key)?.toString('utf8');
  }

  /** A non-negative integer record (`size` only from the entry's own records). */
  private integer(key: string, own = false): number | undefined {
    const v = this.raw(key, own)?.toString('latin1');
    if (v === undefined) return undefined;
    const n = DECIMAL.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw this.fail(`PAX ${key}=${JSON.stringify(v.slice(0, 40))} is not a non-negative integer`);
    return n;
  }

  private time(): number | undefined {
    const v = this.raw('mtime')?.toString('latin1');
    if (v === undefined) return undefined;
    const n = PAX_TIME.test(v) ? Math.floor(Number(v)) : NaN;
    if (!Number.isSafeInteger(n)) throw this.fail(`PAX mtime=${JSON.stringify(v.slice(0, 40))} is not a time`);
    return n;
  }

  private xattrs(): Map<string, Buffer> {
    if (this.paxXattrs.size === 0) return this.globalXattrs;
    if (this.globalXattrs.size === 0) return this.paxXattrs;
    return new Map([...this.globalXattrs, ...this.paxXattrs]);
  }
}
