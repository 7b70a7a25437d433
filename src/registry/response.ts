import type { Readable } from 'node:stream';
import type { Dispatcher } from './undici.js';
import { OciToolError } from '../util/errors.js';
import { transferFailure } from './network.js';

/** Error bodies are read this far for the message; the rest is dropped unread. */
export const MAX_ERROR_BODY = 64 * 1024;

/**
 * A response: status, headers, and the body as a Node stream (undici's request API, which hands
 * buffers over without the copies and web-stream layers of fetch). A body must be read or cancelled.
 * Bodies are read into memory only under a cap, checked as the bytes arrive.
 */
export class HttpResponse {
  constructor(
    private readonly raw: Dispatcher.ResponseData,
    /** The URL that answered (after redirects). */
    readonly url: string,
    /** `host: what the request was about`, for messages. */
    readonly label: string,
    /** The request bound, for messages. */
    readonly timeoutMs: number,
  ) {}
  get status(): number {
    return this.raw.statusCode;
  }
  get body(): Readable {
    return this.raw.body;
  }
  readonly headers = {
    get: (name: string): string | null => {
      const v = this.raw.headers[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
    },
  };
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  /** The stated Content-Length; undefined when there is none (or it is not a plain number). */
  contentLength(): number | undefined {
    const v = this.headers.get('content-length')?.trim();
    return v !== undefined && /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : undefined;
  }
  /** The whole body; past `cap` bytes (stated or received) the body is dropped and a TOO_LARGE error thrown. */
  async bytes(cap: number): Promise<Buffer> {
    const body = this.raw.body;
    const tooLarge = (): OciToolError => {
      this.drop();
      return new OciToolError('TOO_LARGE', `${this.label}: the answer is over the ${cap}-byte limit (the rest was not read)`);
    };
    if ((this.contentLength() ?? 0) > cap) throw tooLarge();
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > cap) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (err) {
      throw transferFailure(this.label, err, this.timeoutMs);
    }
    return Buffer.concat(chunks, total);
  }
  /** At most `limit` bytes of the body as text, the rest dropped unread; what arrived if the body fails. */
  async head(limit = MAX_ERROR_BODY): Promise<string> {
    const body = this.raw.body;
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        chunks.push(chunk.subarray(0, limit - total));
        total += Math.min(chunk.length, limit - total);
        if (total >= limit) break;
      }
    } catch {
      /* a message from what arrived */
    } finally {
      this.drop();
    }
    return Buffer.concat(chunks).toString('utf8');
  }
  /** Drops the body at once, unread: the connection is closed (for bodies that may be large). */
  drop(): void {
    this.raw.body.on('error', () => undefined); // undici reports its own abort as an error
    this.raw.body.destroy();
  }
  /** Drops the rest of the body (the connection goes back to the pool when it is small). */
  async cancel(): Promise<void> {
    await this.raw.body.dump().catch(() => undefined);
  }
}
