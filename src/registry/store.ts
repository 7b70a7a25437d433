import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipeline as pipelineCb } from 'node:stream';
import { fetchBytes, readCapped, type Store } from '../content/store.js';
import { digestOf, isValidDigest } from '../digest/digest.js';
import { VerifyingStream, isVerifiedFor, markVerified } from '../digest/verify.js';
import { schema1Digest } from '../convert/schema1.js';
import { MANIFEST_ACCEPT, MediaType, isManifestType, isSchema1Type } from '../spec/media-types.js';
import { checkIndex, detectManifestType, parseJson, MAX_JSON_BYTES } from '../spec/parse.js';
import type { Descriptor, ImageIndex } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import type { Credential } from './auth/credentials.js';
import { RegistryError, RegistryTimeout } from './errors.js';
import { ResumingBody } from './resuming-body.js';
import { listTags, type TagListOptions } from './tags.js';
import { blobLocations, type BlobLocations } from './blob-locations.js';
import { RegistryHttp, type RegistryHttpOptions } from './http.js';
import type { HttpResponse } from './response.js';

const DEFAULT_CHUNK = 8 * 1024 * 1024;

export interface RegistryStoreOptions extends RegistryHttpOptions {
  /** Ask for push access too (default: pull only). */
  push?: boolean;
  credential?: Credential;
  /** Where blobs were seen before (for cross-repository mounts); default the process-wide cache. */
  locations?: BlobLocations;
  /** Blobs larger than this go up in chunks of this size (default 8 MiB); smaller ones in one PUT. */
  chunkSize?: number;
}

/** A repository in a registry, as a Store: the distribution API's blobs, uploads and manifests endpoints. */
export class RegistryStore implements Store {
  readonly name: string;
  readonly http: RegistryHttp;
  private readonly scopes: string[];
  private readonly locations: BlobLocations;
  private readonly chunkSize: number;
  private readonly mountSources: string[] = [];
  /** Uploads a registry started in answer to a mount it did not do, by digest. */
  private readonly startedUploads = new Map<string, string>();

  constructor(
    readonly host: string,
    readonly repository: string,
    opts: RegistryStoreOptions = {},
  ) {
    this.name = `docker://${host}/${repository}`;
    this.locations = opts.locations ?? blobLocations;
    this.chunkSize = Math.max(64 * 1024, opts.chunkSize ?? DEFAULT_CHUNK);
    this.http = new RegistryHttp(host, opts);
    this.scopes = [`repository:${repository}:${opts.push ? 'pull,push' : 'pull'}`];
  }

  private path(kind: 'blobs' | 'manifests', ref: string): string {
    return `/v2/${this.repository}/${kind}/${ref}`;
  }

  async resolve(reference: string): Promise<Descriptor> {
    const ref = reference === '' ? 'latest' : reference;
    const what = `manifest ${ref} of ${this.repository}`;
    const head = await this.http.request('HEAD', this.path('manifests', ref), { headers: { accept: MANIFEST_ACCEPT.join(', ') }, scopes: this.scopes, what });
    const mediaType = (head.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const digest = head.headers.get('docker-content-digest');
    const size = head.contentLength();
    if (digest && isValidDigest(digest) && size !== undefined && isManifestType(mediaType) && !isValidDigest(ref)) return { mediaType, digest, size };
    // No usable HEAD answer (no digest, no length, …) or a digest reference, which we hash ourselves: read the manifest.
    const bytes = await this.getManifestBytes(ref, what);
    const type = isManifestType(mediaType) ? mediaType : detectManifestType(parseJson(bytes, what));
    if (type === undefined) throw new OciToolError('UNSUPPORTED', `${this.name}:${ref}: cannot tell the manifest type`);
    // A signed schema 1 manifest's digest is taken over its JWS payload, not over the bytes served.
    const d = isSchema1Type(type) ? schema1Digest(bytes, what) : digestOf(bytes);
    if (isValidDigest(ref) && ref !== d) throw new OciToolError('DIGEST_MISMATCH', `${this.name}@${ref}: registry sent a manifest hashing to ${d}`);
    return { mediaType: type, digest: d, size: bytes.length };
  }

  private async getManifestBytes(ref: string, what: string): Promise<Buffer> {
    const res = await this.http.request('GET', this.path('manifests', ref), { headers: { accept: MANIFEST_ACCEPT.join(', ') }, scopes: this.scopes, what });
    return res.bytes(MAX_JSON_BYTES);
  }

  async fetch(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const kind = isManifestType(desc.mediaType) ? 'manifests' : 'blobs';
    const what = `${kind === 'manifests' ? 'manifest' : 'blob'} ${desc.digest} of ${this.repository}`;
    const get = (headers: Record<string, string>): Promise<HttpResponse> =>
      this.http.request('GET', this.path(kind, desc.digest), {
        headers: kind === 'manifests' ? { accept: MANIFEST_ACCEPT.join(', '), ...headers } : headers,
        scopes: this.scopes,
        what,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    if (isSchema1Type(desc.mediaType)) {
      // Hashed as registries hash schema 1 (the signed payload), so not by a VerifyingStream.
      const bytes = await (await get({})).bytes(MAX_JSON_BYTES);
      const got = schema1Digest(bytes, `${what} (from ${this.host})`);
      if (got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${what} (from ${this.host}): the manifest hashes to ${got} (schema 1 payload)`);
      return markVerified(Readable.from([bytes]), desc.digest);
    }
    const res = await get({});
    if (kind === 'blobs') await this.locations.record(this.host, this.repository, desc.digest);
    const body = new ResumingBody(res, (offset) => get({ range: `bytes=${offset}-` }), { what: `${what} (from ${this.host})`, ...(opts.signal ? { signal: opts.signal } : {}) });
    return pipelineCb(body, new VerifyingStream(desc, `${what} (from ${this.host})`), () => undefined);
  }

  /**
   * The referrers API (`GET /v2/NAME/referrers/DIGEST`, distribution-spec 1.1): the index of manifests
   * whose subject is `digest`, or undefined when the registry has no such API (distribution 2.8 answers
   * 404), in which case clients keep the fallback tag `sha256-<hex>` instead.
   */
  async referrersApi(digest: string): Promise<ImageIndex | undefined> {
    const res = await this.http.request('GET', `/v2/${this.repository}/referrers/${digest}`, {
      headers: { accept: MediaType.OciIndex },
      scopes: this.scopes,
      what: `referrers of ${digest} in ${this.repository}`,
      ok: (st) => (st >= 200 && st < 300) || st === 404 || st === 400 || st === 405,
    });
    if (res.status !== 200 || !(res.headers.get('content-type') ?? '').includes(MediaType.OciIndex)) {
      await res.cancel();
      return undefined;
    }
    const bytes = await res.bytes(MAX_JSON_BYTES);
    return checkIndex(parseJson(bytes, `referrers of ${digest}`), `referrers of ${digest}`);
  }

  /**
   * A blob's size as the registry states it, or undefined when it does not have the blob. A HEAD
   * answer without a length is no size: then a GET's Content-Length says it (or nothing does).
   */
  async blobSize(digest: string): Promise<number | undefined> {
    const what = `blob ${digest} of ${this.repository}`;
    const found = (st: number): boolean => (st >= 200 && st < 300) || st === 404;
    const head = await this.http.request('HEAD', this.path('blobs', digest), { scopes: this.scopes, what, ok: found });
    await head.cancel();
    if (head.status === 404) return undefined;
    const stated = head.contentLength();
    if (stated !== undefined) return stated;
    const res = await this.http.request('GET', this.path('blobs', digest), { scopes: this.scopes, what, ok: found });
    // Only the length is wanted: the body is dropped unread (counting an endless one would never end).
    res.drop();
    return res.status === 404 ? undefined : res.contentLength();
  }

  async exists(desc: Descriptor): Promise<boolean> {
    const kind = isManifestType(desc.mediaType) ? 'manifests' : 'blobs';
    const res = await this.http.request('HEAD', this.path(kind, desc.digest), {
      headers: kind === 'manifests' ? { accept: MANIFEST_ACCEPT.join(', ') } : {},
      scopes: this.scopes,
      what: `${kind} ${desc.digest}`,
      ok: (s) => (s >= 200 && s < 300) || s === 404,
    });
    if (res.status !== 404 && kind === 'blobs') await this.locations.record(this.host, this.repository, desc.digest);
    return res.status !== 404;
  }

  /** Names a repository of this registry that likely holds the blobs being copied (the copy's source). */
  addMountSource(repository: string): void {
    if (repository !== this.repository && !this.mountSources.includes(repository)) this.mountSources.push(repository);
  }

  /**
   * Tries a cross-repository mount of a blob from repositories of this registry known to hold it:
   * the copy's source, then earlier sightings. Returns the repository it came from, or undefined (an
   * upload the registry started instead is kept for push()).
   */
  async mount(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<{ from: string } | undefined> {
    if (isManifestType(desc.mediaType)) return undefined;
    const cached = await this.locations.candidates(this.host, this.repository, desc.digest);
    const candidates = [...new Set([...this.mountSources, ...cached])].slice(0, 3);
    for (const from of candidates) {
      const q = new URLSearchParams({ mount: desc.digest, from });
      const res = await this.http
        .request('POST', `/v2/${this.repository}/blobs/uploads/?${q.toString()}`, {
          scopes: [...this.scopes, `repository:${from}:pull`],
          what: `mount of blob ${desc.digest} from ${from}`,
          headers: { 'content-length': '0' },
          ...(opts.signal ? { signal: opts.signal } : {}),
        })
        .catch(() => undefined); // a refused mount falls back to an upload
      await res?.cancel();
      if (res?.status === 201) {
        await this.locations.record(this.host, this.repository, desc.digest);
        return { from };
      }
      // 202: the registry started an ordinary upload instead; push() will use it.
      const location = res?.status === 202 ? res.headers.get('location') : null;
      if (location) {
        this.startedUploads.set(desc.digest, location);
        return undefined;
      }
    }
    return undefined;
  }

  /**
   * Uploads a blob. Small blobs are read into memory and sent in one PUT; larger ones go up in
   * chunks (PATCH with Content-Range), each held in memory until the registry has it, so that a chunk
   * that fails is sent again from the offset the registry reports. A registry that lost the upload
   * (or will not say where it is) gets a retryable error: the copy starts the blob over.
   */
  async push(desc: Descriptor, content: Readable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (isManifestType(desc.mediaType)) {
      const bytes = await readCapped(content, MAX_JSON_BYTES, desc.digest);
      await this.putManifest(desc, bytes, desc.digest, opts.signal);
      return;
    }
    const what = `upload of blob ${desc.digest} to ${this.repository}`;
    const signal = opts.signal ? { signal: opts.signal } : {};
    // Verified on the way out: the final PUT (which commits the blob) happens only after the whole
    // stream has hashed right.
    const verified = isVerifiedFor(content, desc.digest) ? content : pipelineCb(content, new VerifyingStream(desc, `blob ${desc.digest}`), () => undefined);
    try {
      let location = this.startedUploads.get(desc.digest);
      this.startedUploads.delete(desc.digest);
      let minChunk = 0;
      if (!location) {
        const start = await this.http.request('POST', `/v2/${this.repository}/blobs/uploads/`, { scopes: this.scopes, what, headers: { 'content-length': '0' }, ...signal });
        location = start.headers.get('location') ?? undefined;
        minChunk = Number(start.headers.get('oci-chunk-min-length') ?? 0) || 0;
        await start.cancel();
        if (!location) throw new RegistryError(`${this.host}: ${what}: no Location in the upload answer`, start.status, []);
      }
      const base = await this.http.base();
      let url = new URL(location, base);
      const chunkSize = Math.max(this.chunkSize, minChunk);
      if (desc.size >= 0 && desc.size <= chunkSize) {
        const bytes = await readCapped(verified, Math.max(desc.size, 0), desc.digest);
        await this.finishUpload(url, desc, bytes, what, opts.signal);
      } else {
        url = await this.uploadChunks(url, verified, chunkSize, what, opts.signal);
        await this.finishUpload(url, desc, Buffer.alloc(0), what, opts.signal);
      }
    } finally {
      verified.destroy();
    }
    await this.locations.record(this.host, this.repository, desc.digest);
  }

  /** Sends `stream` in PATCH requests of `chunkSize` bytes; returns the location to finish at. */
  private async uploadChunks(start: URL, stream: Readable, chunkSize: number, what: string, signal?: AbortSignal): Promise<URL> {
    let url = start;
    let offset = 0; // bytes the registry has
    const buf = Buffer.allocUnsafe(chunkSize);
    let fill = 0;
    const flush = async (): Promise<void> => {
      let sent = 0; // bytes of buf the registry has
      for (let tries = 0; sent < fill; tries++) {
        const body = buf.subarray(sent, fill);
        try {
          const res = await this.http.request('PATCH', url.href, {
            scopes: this.scopes,
            what: `${what} (bytes ${offset}-${offset + body.length - 1})`,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
            body,
            // Not resent blindly: part of it may have arrived. The registry is asked where it got to.
            attempts: 1,
            ...(signal ? { signal } : {}),
          });
          await res.cancel();
          url = new URL(res.headers.get('location') ?? url.href, url);
          offset += body.length;
          sent = fill;
        } catch (err) {
          // A registry that let the bound run out has had its time (and the request its retries).
          if (signal?.aborted || tries >= 4 || err instanceof RegistryTimeout || (err instanceof RegistryError && (err.status === 401 || err.status === 403))) throw err;
          const wait = err instanceof RegistryError && err.retryAfter !== undefined ? Math.min(err.retryAfter, 60) * 1000 : 100 * 2 ** tries;
          await sleep(wait, undefined, signal ? { signal } : {});
          // Where did the registry get to? Resume from there if it lies within this chunk.
          const have = await this.uploadOffset(url, what, signal);
          const chunkStart = offset - sent;
          if (have === undefined || have < chunkStart || have > chunkStart + fill) {
            throw new RegistryError(`${this.host}: ${what}: the registry lost the upload at byte ${offset} (${err instanceof Error ? err.message : String(err)})`, 503, [{ code: 'BLOB_UPLOAD_INVALID' }]);
          }
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
    return url;
  }

  /** The number of bytes an upload in progress holds, from its `Range: 0-N`; undefined if unknown. */
  private async uploadOffset(url: URL, what: string, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const res = await this.http.request('GET', url.href, { scopes: this.scopes, what: `status of ${what}`, ...(signal ? { signal } : {}) });
      await res.cancel();
      const range = res.headers.get('range');
      if (!range || /^(bytes=)?0-0$/.test(range)) return 0; // distribution says 0-0 for an empty upload
      const m = /^(?:bytes=)?0-(\d+)$/.exec(range);
      return m ? Number(m[1]) + 1 : undefined;
    } catch {
      return undefined;
    }
  }

  private async finishUpload(url: URL, desc: Descriptor, body: Buffer, what: string, signal?: AbortSignal): Promise<void> {
    const put = new URL(url.href);
    put.searchParams.set('digest', desc.digest);
    const res = await this.http.request('PUT', put.href, {
      scopes: this.scopes,
      what,
      headers: { 'content-type': 'application/octet-stream' },
      body,
      ...(signal ? { signal } : {}),
    });
    await res.cancel();
    const got = res.headers.get('docker-content-digest');
    if (got && got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: registry stored blob ${desc.digest} as ${got}`);
  }

  private async putManifest(desc: Descriptor, bytes: Buffer, ref: string, signal?: AbortSignal): Promise<void> {
    const res = await this.http.request('PUT', this.path('manifests', ref), {
      scopes: this.scopes,
      ...(signal ? { signal } : {}),
      what: `push of manifest ${desc.digest} to ${this.repository}:${ref}`,
      headers: { 'content-type': desc.mediaType },
      body: bytes,
    });
    const got = res.headers.get('docker-content-digest');
    await res.cancel();
    if (got && got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: registry stored manifest ${desc.digest} as ${got}`);
  }

  /** Every tag of the repository (see tags.ts for the bounds). */
  listTags(opts: TagListOptions = {}): Promise<string[]> {
    return listTags(this.http, this.repository, this.scopes, opts);
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    const bytes = await fetchBytes(this, desc);
    await this.putManifest(desc, bytes, tag);
  }
}
