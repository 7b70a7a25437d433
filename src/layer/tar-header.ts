/**
 * Tar headers as Go's archive/tar (containerd, umoci, ggcr) writes them: USTAR when the entry fits,
 * a PAX extended header (records in sorted order) when a name or link target is too long or not
 * ASCII, or a number does not fit its field. No user or group names, no atime or ctime.
 */

export const BLOCK = 512;

export type TarTypeflag = '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x';

export interface TarHeader {
  name: string;
  typeflag: TarTypeflag;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as PAX `SCHILY.xattr.NAME` records (raw bytes). */
  xattrs?: ReadonlyMap<string, Buffer>;
}

const MAX_OCTAL_7 = 0o7777777; // 8-byte fields: 7 digits + NUL
const MAX_OCTAL_11 = 0o77777777777; // 12-byte fields: 11 digits + NUL
const isAscii = (s: string): boolean => /^[\x01-\x7f]*$/.test(s);

function writeOctal(buf: Buffer, off: number, width: number, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0'), off, width - 1, 'ascii');
  buf[off + width - 1] = 0;
}

/** Splits a long ASCII name into USTAR prefix (≤155) and name (≤100) at a '/', as Go's archive/tar does. */
function splitUstar(name: string): [string, string] | undefined {
  if (name.length <= 100) return ['', name];
  let length = name.length;
  if (length > 156) length = 156;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > 100 || nlen === 0 || i > 155) return undefined;
  return [name.slice(0, i), name.slice(i + 1)];
}

function ustarBlock(h: TarHeader, name: string, prefix: string, linkname: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  writeOctal(b, 100, 8, h.mode & 0o7777);
  writeOctal(b, 108, 8, Math.min(h.uid, MAX_OCTAL_7));
  writeOctal(b, 116, 8, Math.min(h.gid, MAX_OCTAL_7));
  writeOctal(b, 124, 12, Math.min(h.size, MAX_OCTAL_11));
  writeOctal(b, 136, 12, Math.min(Math.max(0, h.mtime), MAX_OCTAL_11));
  b.write('        ', 148, 8, 'ascii');
  b.write(h.typeflag, 156, 1, 'ascii');
  b.write(linkname, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'ascii');
  writeOctal(b, 329, 8, h.devmajor ?? 0);
  writeOctal(b, 337, 8, h.devminor ?? 0);
  b.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\x00 `, 148, 8, 'ascii');
  return b;
}

function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
  const bodyLen = body.length;
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length !== String(bodyLen).length) len = bodyLen + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** The header block(s) of one entry: a PAX header and its data first when needed. */
export function encodeHeader(h: TarHeader): Buffer[] {
  const pax: Record<string, string | Buffer> = {};
  let name = h.name;
  let prefix = '';
  const split = isAscii(h.name) ? splitUstar(h.name) : undefined;
  if (split) [prefix, name] = split;
  else {
    pax.path = h.name;
    name = asciiFallback(h.name, 100);
  }
  let linkname = h.linkname ?? '';
  if (linkname.length > 100 || !isAscii(linkname)) {
    pax.linkpath = linkname;
    linkname = asciiFallback(linkname, 100);
  }
  if (h.size > MAX_OCTAL_11) pax.size = String(h.size);
  if (h.uid > MAX_OCTAL_7) pax.uid = String(h.uid);
  if (h.gid > MAX_OCTAL_7) pax.gid = String(h.gid);
  if (h.mtime > MAX_OCTAL_11 || h.mtime < 0) pax.mtime = String(h.mtime);
  for (const [k, v] of h.xattrs ?? []) pax[`SCHILY.xattr.${k}`] = v;
  const main = ustarBlock(h, name, prefix, linkname);
  const keys = Object.keys(pax).sort();
  if (keys.length === 0) return [main];
  const data = Buffer.concat(keys.map((k) => paxRecord(k, pax[k]!)));
  const paxName = `PaxHeaders.0/${asciiFallback(h.name.split('/').filter(Boolean).pop() ?? 'x', 80)}`;
  const paxHeader = ustarBlock({ name: paxName, typeflag: 'x', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: Math.min(Math.max(0, h.mtime), MAX_OCTAL_11) }, paxName, '', '');
  return [paxHeader, data, padding(data.length), main];
}

function asciiFallback(s: string, max: number): string {
  return s.replace(/[^\x01-\x7f]/g, '_').slice(0, max);
}

const ZEROS = Buffer.alloc(BLOCK);

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? ZEROS.subarray(0, 0) : ZEROS.subarray(0, BLOCK - rem);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
