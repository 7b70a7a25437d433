/**
 * Random access into a tar file: one pass over its headers (the data is skipped, never read) gives
 * each entry's offset and size, so a member is then streamed straight from its bytes in the file.
 * Reads ustar, GNU (long names `L`/`K`, base-256 sizes) and PAX (`path`, `linkpath`, `size`) headers:
 * what docker save, skopeo, containers/image and GNU tar write. A member that runs past the end of
 * the file is a truncated archive, reported as such.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import { paxRecords, tarChecksumOk, tarNumber as octal, tarString as cstr } from '../util/tar-fields.js';

export interface TarMember {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'other';
  /** Offset of the data in the file. */
  offset: number;
  size: number;
  linkname?: string;
}

const BLOCK = 512;

/** `a/./b/` and `./a//b` → `a/b`. */
export function cleanName(name: string): string {
  const n = posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  return n === '.' ? '' : n.replace(/^\.\//, '');
}

/** An indexed tar file: its members by clean name. */
export class TarIndex {
  private constructor(
    readonly file: string,
    readonly members: Map<string, TarMember>,
  ) {}

  /** Reads every header of `file`. `what` names the archive in errors. */
  static async open(file: string, what: string = file): Promise<TarIndex> {
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new OciToolError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO', `${what}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    try {
      const total = (await fh.stat()).size;
      const members = new Map<string, TarMember>();
      const header = Buffer.alloc(BLOCK);
      let pos = 0;
      let longName: string | undefined;
      let longLink: string | undefined;
      let pax = new Map<string, string>();
      const text = (m: Map<string, Buffer>): Map<string, string> => new Map([...m].map(([k, v]) => [k, v.toString('utf8')]));
      const readAt = async (buf: Buffer, at: number): Promise<number> => (await fh.read(buf, 0, buf.length, at)).bytesRead;
      for (;;) {
        if (pos + BLOCK > total) {
          if (pos < total) throw new OciToolError('INVALID_ARCHIVE', `${what}: truncated (a tar header is cut off at byte ${pos})`);
          break; // no end-of-archive blocks: tolerated, as GNU tar does
        }
        await readAt(header, pos);
        if (header.every((b) => b === 0)) break;
        if (!tarChecksumOk(header)) throw new OciToolError('INVALID_ARCHIVE', `${what}: not a tar file, or damaged (bad header checksum at byte ${pos})`);
        const flag = String.fromCharCode(header[156]!);
        let size = octal(header, 124, 12);
        if (pax.has('size')) size = Number(pax.get('size'));
        const dataAt = pos + BLOCK;
        const next = dataAt + Math.ceil(size / BLOCK) * BLOCK;
        if (dataAt + size > total) throw new OciToolError('INVALID_ARCHIVE', `${what}: truncated (member ${JSON.stringify(longName ?? cstr(header, 0, 100))} needs ${dataAt + size - total} more bytes)`);
        if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
          const data = Buffer.alloc(size);
          await readAt(data, dataAt);
          if (flag === 'L') longName = cstr(data, 0, size);
          else if (flag === 'K') longLink = cstr(data, 0, size);
          else if (flag === 'x') pax = text(paxRecords(data));
          pos = next;
          continue;
        }
        const magic = header.toString('latin1', 257, 262);
        const prefix = magic === 'ustar' ? cstr(header, 345, 155) : '';
        const rawName = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${cstr(header, 0, 100)}` : cstr(header, 0, 100));
        const linkname = pax.get('linkpath') ?? longLink ?? cstr(header, 157, 100);
        const type: TarMember['type'] = flag === '0' || flag === '\0' || flag === '7' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : flag === '1' ? 'link' : 'other';
        const name = cleanName(rawName);
        members.set(name, { name, type, offset: dataAt, size: type === 'file' ? size : 0, ...(type === 'symlink' || type === 'link' ? { linkname } : {}) });
        longName = undefined;
        longLink = undefined;
        pax = new Map();
        pos = next;
      }
      return new TarIndex(file, members);
    } finally {
      await fh.close();
    }
  }

  /** The regular file at `name`, following symlinks and hard links (within the archive). */
  find(name: string): TarMember | undefined {
    let m = this.members.get(cleanName(name));
    for (let hops = 0; m && m.type !== 'file' && hops < 16; hops++) {
      if (m.type === 'symlink') m = this.members.get(cleanName(posix.join(posix.dirname(m.name), m.linkname ?? '')));
      else if (m.type === 'link') m = this.members.get(cleanName(m.linkname ?? ''));
      else return undefined;
    }
    return m?.type === 'file' ? m : undefined;
  }

  /** The bytes of a member, streamed from the file. */
  stream(m: TarMember): Readable {
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
  }

  /** A whole (small) member. */
  async read(m: TarMember): Promise<Buffer> {
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(m.size);
      await fh.read(buf, 0, m.size, m.offset);
      return buf;
    } finally {
      await fh.close();
    }
  }

  /** The first bytes of a member (to sniff its compression). */
  async head(m: TarMember, n = 8): Promise<Buffer> {
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(n, m.size));
      await fh.read(buf, 0, buf.length, m.offset);
      return buf;
    } finally {
      await fh.close();
    }
  }
}
