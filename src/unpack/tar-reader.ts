/**
 * A streaming tar reader for layers, over the one header decoder (util/tar-decoder.ts): ustar, GNU
 * and PAX headers, with PAX values kept as raw bytes, so that binary extended attributes
 * (`SCHILY.xattr.security.capability`, say) survive, which general-purpose readers decode as text.
 * Extended headers are bounded before they are read (see the decoder), so a hostile layer cannot
 * make it buffer more than a few MiB.
 *
 * `readTar(source)` yields entries one at a time; an entry's `body` must be read to its end (or
 * `skip()`ped) before the next entry is asked for.
 */
import { OciToolError } from '../util/errors.js';
import { TAR_BLOCK as BLOCK, TarDecoder, padded, type TarEntryHeader } from '../util/tar-decoder.js';

/** An entry's header; `size` is the file's size (0 for every other type). */
export type TarHeader = Omit<TarEntryHeader, 'flag'>;

export interface TarItem {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
  /** Discards what is left of the body. */
  skip(): Promise<void>;
}

/** Reads exact byte counts from a stream of chunks. */
class Bytes {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  /** Bytes handed out so far. */
  offset = 0;
  constructor(
    private readonly it: AsyncIterator<Buffer>,
    private readonly what: string,
  ) {}

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

  /** Exactly n bytes; throws when cut short, or (`mayEnd`) gives undefined at a clean end (nothing left). */
  async take(n: number, what: string, mayEnd: true): Promise<Buffer | undefined>;
  async take(n: number, what: string): Promise<Buffer>;
  async take(n: number, what: string, mayEnd = false): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (mayEnd && this.have === 0) return undefined;
      throw new OciToolError('INVALID_ARCHIVE', `${this.what}: truncated (${what})`);
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
    this.offset += n;
    return out;
  }

  /** The next n bytes as they come, in pieces. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.have === 0 && !(await this.fill(1))) throw new OciToolError('INVALID_ARCHIVE', `${this.what}: truncated (${what})`);
      const c = this.chunks[0]!;
      const k = Math.min(c.length, left);
      yield k === c.length ? c : c.subarray(0, k);
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
      this.have -= k;
      this.offset += k;
      left -= k;
    }
  }
}

/** The entries of a tar; `what` names it in errors (the layer). */
export async function* readTar(source: AsyncIterable<Buffer>, what = 'layer tar'): AsyncGenerator<TarItem> {
  const bytes = new Bytes(source[Symbol.asyncIterator](), what);
  const decoder = new TarDecoder(what);
  for (;;) {
    const at = bytes.offset;
    const h = await bytes.take(BLOCK, 'a header', true);
    if (!h) return; // no end-of-archive blocks: tolerated, as GNU tar does
    const step = decoder.next(h, at);
    if (step.kind === 'end') return;
    if (step.kind === 'extended') {
      decoder.extended((await bytes.take(padded(step.size), 'an extended header')).subarray(0, step.size));
      continue;
    }
    const { flag: _flag, ...rest } = step.header;
    const size = rest.size;
    const header: TarHeader = { ...rest, size: rest.type === 'file' ? size : 0 };
    // The data (for files; other types with a size have it skipped), then the padding.
    let consumed = false;
    const where = `the data of ${JSON.stringify(header.name)}`;
    const body = async function* (): AsyncGenerator<Buffer> {
      if (consumed) return;
      consumed = true;
      yield* bytes.stream(size, where);
      await bytes.take(padded(size) - size, where, true);
    };
    const skip = async (): Promise<void> => {
      for await (const _ of body()) void _;
    };
    yield { header, body: body(), skip };
    await skip();
  }
}
