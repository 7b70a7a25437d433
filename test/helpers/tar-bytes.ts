/**
 * Tar bytes made by hand, field by field, for tests that need headers no well-behaved writer makes
 * (negative PAX sizes, GNU headers with times in the prefix field, names that claim megabytes).
 */

export const BLOCK = 512;

export interface RawHeader {
  name: string;
  /** Type flag (default '0'). */
  flag?: string;
  /** Written in the size field as octal; `sizeField` writes raw text instead. */
  size?: number;
  sizeField?: string;
  linkname?: string;
  mode?: number;
  mtime?: number;
  /** 'posix' (ustar\0 00, the default), 'gnu' (ustar  \0) or 'v7' (no magic). */
  magic?: 'posix' | 'gnu' | 'v7';
  /** Bytes 345..499: the POSIX prefix, or (GNU) the atime and ctime fields. */
  prefix?: string;
}

const octal = (b: Buffer, off: number, width: number, v: number): void => {
  b.write(v.toString(8).padStart(width - 1, '0'), off, width - 1, 'latin1');
};

/** One 512-byte header block, checksum filled in. */
export function headerBlock(h: RawHeader): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  octal(b, 100, 8, h.mode ?? 0o644);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  if (h.sizeField !== undefined) b.write(h.sizeField, 124, 12, 'latin1');
  else octal(b, 124, 12, h.size ?? 0);
  octal(b, 136, 12, h.mtime ?? 1_600_000_000);
  b.write(h.flag ?? '0', 156, 1, 'latin1');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  const magic = h.magic ?? 'posix';
  if (magic === 'posix') b.write('ustar\x0000', 257, 8, 'latin1');
  if (magic === 'gnu') b.write('ustar  \x00', 257, 8, 'latin1');
  if (h.prefix) b.write(h.prefix, 345, 155, 'latin1');
  return seal(b);
}

/** Writes a header block's checksum (after a test changed its bytes); returns the block. */
export function seal(b: Buffer): Buffer {
  b.write('        ', 148, 8, 'latin1');
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

const pad = (data: Buffer): Buffer => Buffer.concat([data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)]);

/** A member: its header (size taken from the data unless given) and the data, padded. */
export function member(h: RawHeader, data: Buffer | string = ''): Buffer {
  const d = Buffer.from(data);
  return Buffer.concat([headerBlock({ size: d.length, ...h }), pad(d)]);
}

/** PAX records as written: `LEN KEY=VALUE\n`, LEN counting itself. */
export function paxData(records: [string, string][]): Buffer {
  return Buffer.concat(
    records.map(([k, v]) => {
      const body = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(body) + 1;
      while (String(len).length + Buffer.byteLength(body) !== len) len++;
      return Buffer.from(`${len}${body}`);
    }),
  );
}

/** An extended header (`x` for the next entry, `g` global) holding these records. */
export function paxHeader(records: [string, string][], flag: 'x' | 'g' = 'x'): Buffer {
  return member({ name: 'PaxHeaders/x', flag }, paxData(records));
}

/** The end-of-archive marker. */
export const END = Buffer.alloc(2 * BLOCK);

export const tarBytes = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, END]);
