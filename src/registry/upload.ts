/**
 * One blob upload session (distribution API: `POST …/blobs/uploads/`, then `PATCH` the bytes to the
 * Location, then `PUT ?digest=`), as RegistryStore's push and pushStream drive it.
 *
 * The bytes go up as one streaming PATCH, read ahead of the socket (StreamedBody), so reading the
 * source and sending overlap and memory stays flat. Only when the registry asks for chunks
 * (`OCI-Chunk-Min-Length`) or the user does (`--chunk-size`) do they go in PATCHes with
 * `Content-Range`, each chunk held in memory until the registry has it.
 */
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { worthRetrying } from '../content/copy.js';
import type { Reopen } from '../content/reopen.js';
import { OciToolError, isOciToolError } from '../util/errors.js';
import { RegistryError, RegistryTimeout } from './errors.js';
import type { RegistryHttp } from './http.js';

/** What an upload needs of its store. */
export interface UploadTarget {
  readonly http: RegistryHttp;
  readonly host: string;
  readonly name: string;
  readonly repository: string;
  readonly scopes: string[];
  /** The size of a blob the registry holds, undefined when it has none (a HEAD). */
  blobSize(digest: string): Promise<number | undefined>;
}

/** Attempts of one streamed PATCH (the first and the resumptions) before the caller starts over. */
const PATCH_ATTEMPTS = 4;

export class BlobUpload {
  private constructor(
    private readonly t: UploadTarget,
    /** The latest Location (it carries the registry's state: always use the newest). */
    private url: URL,
    /** The chunk size the registry asked for (`OCI-Chunk-Min-Length`), 0 if none. */
    readonly minChunk: number,
    private readonly what: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** Starts an upload (POST), or takes one a registry started in answer to a mount. */
  static async start(t: UploadTarget, what: string, signal: AbortSignal | undefined, started?: { location: string; minChunk: number }): Promise<BlobUpload> {
    const base = await t.http.base();
    if (started) return new BlobUpload(t, new URL(started.location, base), started.minChunk, what, signal);
    const res = await t.http.request('POST', `/v2/${t.repository}/blobs/uploads/`, { scopes: t.scopes, what, headers: { 'content-length': '0' }, ...(signal ? { signal } : {}) });
    await res.cancel();
    const location = res.headers.get('location');
    if (!location) throw new RegistryError(`${t.host}: ${what}: no Location in the upload answer`, res.status, []);
    return new BlobUpload(t, new URL(location, base), minChunkOf(res.headers.get('oci-chunk-min-length')), what, signal);
  }

  private get sig(): { signal?: AbortSignal } {
    return this.signal ? { signal: this.signal } : {};
  }

  /**
   * Sends all of `content` (from byte 0; `size` bytes, or unknown) as one streaming PATCH. When the
   * PATCH fails mid-way and the content can be reopened, the registry is asked how much it holds and
   * the rest is sent from there; otherwise the failure is thrown (the copy starts the blob over).
   */
  async stream(content: Readable, size: number | undefined, reopen?: Reopen): Promise<void> {
    let body = content;
    let offset = 0; // where `body` starts in the blob
    for (let attempt = 1; ; attempt++) {
      try {
        await this.patch(body, offset, size === undefined ? undefined : size - offset, this.what);
        return;
      } catch (err) {
        body.destroy();
        if (this.signal?.aborted || attempt >= PATCH_ATTEMPTS || !reopen || size === undefined || !worthRetrying(err)) throw err;
        const have = await this.offset();
        if (have === undefined || have > size) throw this.lost(offset, err);
        // The registry holds bytes 0..have-1. The blob is opened again from its start and read
        // through its verifier, which hashes the prefix the registry already has without sending it,
        // then the rest goes up: the final PUT still comes only after the whole blob hashed right.
        // (Keeping the hash state of every offset instead would mean hashing each upload a second
        // time, on every push; re-reading the prefix costs a read of a local file, and only on this
        // failure path.)
        body = skipFirst(await reopen(), have);
        offset = have;
      }
    }
  }

  /**
   * One PATCH of `body` (`length` bytes from `offset`, or to its end when unknown). Resolves only
   * once `body` has ended cleanly: a source that fails its digest check at its end fails here, even
   * when the registry answered first.
   */
  private async patch(body: Readable, offset: number, length: number | undefined, what: string): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (length !== undefined) headers['content-length'] = String(length);
    if (offset > 0 && length !== undefined) headers['content-range'] = `${offset}-${offset + length - 1}`;
    const ended = finished(body);
    ended.catch(() => undefined);
    const res = await this.t.http.request('PATCH', this.url.href, { scopes: this.t.scopes, what, headers, body, ...this.sig });
    await res.cancel();
    this.url = new URL(res.headers.get('location') ?? this.url.href, this.url);
    await Promise.race([ended, sleep(res.timeoutMs, undefined, { ref: false }).then(() => Promise.reject(new OciToolError('REGISTRY', `${res.label}: the registry answered before the upload was sent`)))]);
  }

  /**
   * Sends `stream` in PATCH requests of `chunkSize` bytes, each held in memory until the registry has
   * it, so that a chunk that fails is sent again from the offset the registry reports. A registry
   * that lost the upload (or will not say where it is) gets a retryable error: the copy starts over.
   */
  async chunks(stream: Readable, chunkSize: number): Promise<void> {
    let offset = 0; // bytes the registry has
    const buf = Buffer.allocUnsafe(chunkSize);
    let fill = 0;
    const flush = async (): Promise<void> => {
      let sent = 0; // bytes of buf the registry has
      for (let tries = 0; sent < fill; tries++) {
        const body = buf.subarray(sent, fill);
        try {
          const res = await this.t.http.request('PATCH', this.url.href, {
            scopes: this.t.scopes,
            what: `${this.what} (bytes ${offset}-${offset + body.length - 1})`,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
            body,
            // Not resent blindly: part of it may have arrived. The registry is asked where it got to.
            attempts: 1,
            ...this.sig,
          });
          await res.cancel();
          this.url = new URL(res.headers.get('location') ?? this.url.href, this.url);
          offset += body.length;
          sent = fill;
        } catch (err) {
          // A registry that let the bound run out has had its time (and the request its retries).
          if (this.signal?.aborted || tries >= 4 || err instanceof RegistryTimeout || (err instanceof RegistryError && (err.status === 401 || err.status === 403))) throw err;
          const wait = err instanceof RegistryError && err.retryAfter !== undefined ? Math.min(err.retryAfter, 60) * 1000 : 100 * 2 ** tries;
          await sleep(wait, undefined, this.sig);
          // Where did the registry get to? Resume from there if it lies within this chunk.
          const have = await this.offset();
          const chunkStart = offset - sent;
          if (have === undefined || have < chunkStart || have > chunkStart + fill) throw this.lost(offset, err);
          sent = have - chunkStart;
          offset = have;
        }
      }
      fill = 0;
    };
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0;
      while (pos < chunk.length) {
        const n = Math.min(chunk.length - pos, chunkSize - fill);
        chunk.copy(buf, fill, pos, pos + n);
        fill += n;
        pos += n;
        if (fill === chunkSize) await flush();
      }
    }
    if (fill > 0) await flush();
  }

  /** A retryable error for an upload the registry lost (or will not say where it is): the copy starts over. */
  private lost(offset: number, cause: unknown): RegistryError {
    return new RegistryError(`${this.t.host}: ${this.what}: the registry lost the upload at byte ${offset} (${cause instanceof Error ? cause.message : String(cause)})`, 503, [{ code: 'BLOB_UPLOAD_INVALID' }]);
  }

  /** The number of bytes the upload holds, from its `Range: 0-N`; undefined if unknown. */
  async offset(): Promise<number | undefined> {
    try {
      const res = await this.t.http.request('GET', this.url.href, { scopes: this.t.scopes, what: `status of ${this.what}`, ...this.sig });
      await res.cancel();
      const range = res.headers.get('range');
      if (!range || /^(bytes=)?0-0$/.test(range)) return 0; // distribution says 0-0 for an empty upload
      const m = /^(?:bytes=)?0-(\d+)$/.exec(range);
      return m ? Number(m[1]) + 1 : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The final `PUT ?digest=` (with the whole blob as `body` for a monolithic upload), which commits
   * the blob. When it fails, the registry may still have committed it and lost only the answer (a
   * proxy's 504, a dropped connection; the retried PUT then finds no upload): a blob that is there at
   * its size is no failure, as go-containerregistry decides too.
   */
  async commit(digest: string, size: number, body: Buffer = Buffer.alloc(0)): Promise<void> {
    const put = new URL(this.url.href);
    put.searchParams.set('digest', digest);
    let got: string | null;
    try {
      const res = await this.t.http.request('PUT', put.href, { scopes: this.t.scopes, what: this.what, headers: { 'content-type': 'application/octet-stream' }, body, ...this.sig });
      await res.cancel();
      got = res.headers.get('docker-content-digest');
    } catch (err) {
      if (this.signal?.aborted || isOciToolError(err, 'DIGEST_MISMATCH')) throw err;
      const have = await this.t.blobSize(digest).catch(() => undefined);
      if (have !== undefined && (size < 0 || have === size)) return;
      throw err;
    }
    if (got && got !== digest) throw new OciToolError('DIGEST_MISMATCH', `${this.t.name}: registry stored blob ${digest} as ${got}`);
  }

  /**
   * Drops the upload (best effort, given 2 s: a registry also forgets uploads left alone, and a copy
   * that was cancelled should not wait on this).
   */
  async cancel(): Promise<void> {
    try {
      const res = await this.t.http.request('DELETE', this.url.href, { scopes: this.t.scopes, what: `cancel of ${this.what}`, attempts: 1, ok: () => true, signal: AbortSignal.timeout(2_000) });
      await res.cancel();
    } catch {
      /* best effort */
    }
  }
}

/** `OCI-Chunk-Min-Length` as a number of bytes, 0 when absent or not one. */
export function minChunkOf(v: string | null): number {
  const n = Number(v?.trim() ?? '');
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** `stream` without its first `n` bytes (its errors and end passed on). */
function skipFirst(stream: Readable, n: number): Readable {
  let left = n;
  const skip = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      if (left >= chunk.length) {
        left -= chunk.length;
        cb();
        return;
      }
      const rest = left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
      cb(null, rest);
    },
  });
  return pipeline(stream, skip, () => undefined);
}
