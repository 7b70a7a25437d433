/**
 * Random access into a tar file: one pass over its headers (the data is skipped, never read) gives
 * each entry's offset and size, so a member is then streamed straight from its bytes in the file.
 * Headers go through the one decoder (util/tar-decoder.ts): ustar, GNU and PAX, bounded. A member
 * that runs past the end of the file is a truncated archive, reported as such; a link that leads
 * outside the archive, or to nothing in it, is reported as that.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { digestOfStream } from '../digest/verify.js';
import { MAX_JSON_BYTES, parseJson } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';
import { TAR_BLOCK as BLOCK, TarDecoder, padded, type TarEntryType } from '../util/tar-decoder.js';

export interface TarMember {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'link' | 'other';
  /** Offset of the data in the file. */
  offset: number;
  size: number;
  linkname?: string;
}

const MEMBER_TYPES: Partial<Record<TarEntryType, TarMember['type']>> = { file: 'file', directory: 'dir', symlink: 'symlink', link: 'link' };
/** Links followed from one name before giving up (as a loop). */
const MAX_HOPS = 16;

/** `a/./b/` and `./a//b` → `a/b`. */
export function cleanName(name: string): string {
  const n = posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  return n === '.' ? '' : n.replace(/^\.\//, '');
}

const outside = (normalized: string): boolean => normalized === '..' || normalized.startsWith('../');

/** An indexed tar file: its members by clean name. */
export class TarIndex {
  private readonly digests = new Map<TarMember, Promise<string>>();

  private constructor(
    readonly file: string,
    readonly members: Map<string, TarMember>,
    /** Names the archive in errors. */
    readonly what: string,
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
      const decoder = new TarDecoder(what);
      const header = Buffer.alloc(BLOCK);
      let pos = 0;
      for (;;) {
        if (pos + BLOCK > total) {
          if (pos < total) throw decoder.fail(`truncated (a tar header is cut off at byte ${pos})`);
          break; // no end-of-archive blocks: tolerated, as GNU tar does
        }
        await fh.read(header, 0, BLOCK, pos);
        const step = decoder.next(header, pos);
        if (step.kind === 'end') break;
        const size = step.kind === 'extended' ? step.size : step.header.size;
        const dataAt = pos + BLOCK;
        if (dataAt + size > total) throw decoder.fail(`truncated (${step.kind === 'entry' ? `member ${JSON.stringify(step.header.name)}` : `the extended header at byte ${pos}`} needs ${dataAt + size - total} more bytes)`);
        if (step.kind === 'extended') {
          const data = Buffer.alloc(size);
          await fh.read(data, 0, size, dataAt);
          decoder.extended(data);
        } else {
          const h = step.header;
          const type = MEMBER_TYPES[h.type] ?? 'other';
          const name = cleanName(h.name);
          members.set(name, { name, type, offset: dataAt, size: type === 'file' ? size : 0, ...(type === 'symlink' || type === 'link' ? { linkname: h.linkname } : {}) });
        }
        const next = dataAt + padded(size);
        if (!(next > pos)) throw decoder.fail(`the header at byte ${pos} does not move on`); // sizes are checked non-negative: a guard
        pos = next;
      }
      return new TarIndex(file, members, what);
    } finally {
      await fh.close();
    }
  }

  /**
   * The regular file at `name`, following symbolic and hard links within the archive; undefined when
   * no member has that name (or it is a directory). A link that leads outside the archive, to a name
   * it does not hold, or round in a loop is an INVALID_ARCHIVE error saying which.
   */
  find(name: string): TarMember | undefined {
    const start = cleanName(name);
    let m = this.members.get(start);
    for (let hops = 0; m && (m.type === 'symlink' || m.type === 'link'); hops++) {
      const link = m;
      const target = link.linkname ?? '';
      const kind = link.type === 'symlink' ? 'a symbolic link' : 'a hard link';
      // A symbolic link resolves from its directory (an absolute one from the host's root); a hard link names a member.
      const resolved = link.type === 'symlink' ? (posix.isAbsolute(target) ? '/' : posix.normalize(posix.join(posix.dirname(link.name), target))) : posix.normalize(target.replace(/^\/+/, ''));
      const subject = link.name === start ? `member ${JSON.stringify(link.name)} is` : `${JSON.stringify(start)} leads to member ${JSON.stringify(link.name)},`;
      const wrong = (why: string): OciToolError => new OciToolError('INVALID_ARCHIVE', `${this.what}: ${subject} ${kind} to ${JSON.stringify(target)}, which ${why}`);
      if (resolved === '/' || outside(resolved)) throw wrong('points outside the archive');
      if (hops >= MAX_HOPS) throw wrong(`is more than ${MAX_HOPS} links away from a file (a loop?)`);
      m = this.members.get(cleanName(resolved));
      if (!m) throw wrong('is not in the archive');
    }
    return m?.type === 'file' ? m : undefined;
  }

  /** The bytes of a member, streamed from the file. */
  stream(m: TarMember): Readable {
    if (m.size === 0) return Readable.from([], { objectMode: false });
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
  }

  /** The sha256 digest of a member, hashed once however often it is asked for. */
  digest(m: TarMember): Promise<string> {
    let d = this.digests.get(m);
    if (!d) {
      d = digestOfStream(this.stream(m));
      this.digests.set(m, d);
    }
    return d;
  }

  /** A whole (small) member: a JSON document, refused unread when it is over `cap`. `what` names it in errors. */
  async read(m: TarMember, what = `${this.what}: ${m.name}`, cap = MAX_JSON_BYTES): Promise<Buffer> {
    if (m.size > cap) throw new OciToolError('TOO_LARGE', `${what}: ${m.size} bytes is over the ${cap}-byte limit for JSON documents`);
    return this.bytesAt(m.offset, m.size);
  }

  /** A JSON member, parsed (refused unread over the cap); `what` names it in errors. */
  async json(m: TarMember, what: string): Promise<unknown> {
    return parseJson(await this.read(m, what), what);
  }

  /** The first bytes of a member (to sniff its compression). */
  head(m: TarMember, n = 8): Promise<Buffer> {
    return this.bytesAt(m.offset, Math.min(n, m.size));
  }

  private async bytesAt(offset: number, n: number): Promise<Buffer> {
    const buf = Buffer.alloc(n);
    if (n === 0) return buf;
    const fh = await open(this.file, 'r');
    try {
      const { bytesRead } = await fh.read(buf, 0, n, offset);
      if (bytesRead < n) throw new OciToolError('INVALID_ARCHIVE', `${this.what}: truncated (the file shrank while it was read)`);
      return buf;
    } finally {
      await fh.close();
    }
  }
}
