import { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import type { HttpResponse } from './response.js';
import { transferFailure } from './network.js';

/**
 * A response body that survives a dropped connection: it asks again from the byte it got to
 * (`Range: bytes=N-`), takes a 206 that starts there or skips ahead in a 200, and gives up after
 * five interruptions, or at once when the last resumption brought no new byte (a body that stalls
 * or breaks at the same place every time). What it passes on still goes through the digest check. The body's chunks are
 * passed straight through (no per-chunk promises: this is the hot path of every pull).
 */
export class ResumingBody extends Readable {
  private source!: Readable;
  private offset = 0;
  private skip = 0;
  private resumes = 0;
  /** Where the body stood when it was last resumed. */
  private resumedAt = -1;
  private switching = false;
  private readonly timeoutMs: number;

  constructor(
    first: HttpResponse,
    private readonly again: (offset: number) => Promise<HttpResponse>,
    private readonly opts: { what: string; signal?: AbortSignal; maxResumes?: number },
  ) {
    super({ highWaterMark: 1 << 20 });
    this.timeoutMs = first.timeoutMs;
    this.attach(first.body);
  }

  private attach(source: Readable): void {
    this.source = source;
    source.on('data', (chunk: Buffer) => {
      if (this.source !== source) return;
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length);
        this.skip -= n;
        chunk = chunk.subarray(n);
        if (chunk.length === 0) return;
      }
      this.offset += chunk.length;
      if (!this.push(chunk)) source.pause();
    });
    source.once('end', () => {
      if (this.source === source) this.push(null);
    });
    source.once('error', (err: Error) => {
      if (this.source === source) void this.resume_(err);
    });
  }

  override _read(): void {
    if (!this.switching) this.source.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.source.destroy();
    cb(err);
  }

  private async resume_(cause: Error): Promise<void> {
    if (this.destroyed) return;
    if (this.opts.signal?.aborted) {
      this.destroy(cause);
      return;
    }
    if (cause instanceof OciToolError || ++this.resumes > (this.opts.maxResumes ?? 5) || this.offset === this.resumedAt) {
      this.destroy(transferFailure(this.opts.what, cause, this.timeoutMs));
      return;
    }
    this.resumedAt = this.offset;
    this.switching = true;
    try {
      const res = await this.again(this.offset);
      if (res.status === 206) {
        const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== this.offset) {
          await res.cancel();
          throw new OciToolError('REGISTRY', `${this.opts.what}: asked to resume at byte ${this.offset}, the registry answered ${res.headers.get('content-range') ?? 'no Content-Range'}`);
        }
        this.skip = 0;
      } else {
        this.skip = this.offset; // a 200: the whole body again
      }
      if (this.destroyed) {
        await res.cancel();
        return;
      }
      this.switching = false;
      this.attach(res.body);
    } catch (err) {
      this.destroy(transferFailure(this.opts.what, err, this.timeoutMs));
    }
  }
}
