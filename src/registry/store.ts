import { Readable } from 'node:stream';
import { pipeline as pipelineCb } from 'node:stream';
import { fetchBytes, readCapped, type PushStreamOptions, type Store, type StreamPusher, type TaggedPusher } from '../content/store.js';
import { markReopenable, reopenerOf } from '../content/reopen.js';
import { digestOf, isValidDigest } from '../digest/digest.js';
import { isValidTag } from '../reference/docker-name.js';
import { HashingStream, VerifyingStream, isVerifiedFor, markVerified } from '../digest/verify.js';
import { schema1Digest } from '../convert/schema1.js';
import { MANIFEST_ACCEPT, MediaType, isManifestType, isSchema1Type } from '../spec/media-types.js';
import { checkIndex, detectManifestType, parseJson, MAX_JSON_BYTES } from '../spec/parse.js';
import type { Descriptor, ImageIndex } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import type { Credential } from './auth/credentials.js';
import { BlobUpload, minChunkOf } from './upload.js';
import { MIN_CHUNK_SIZE, uploadChunkSize } from './upload-settings.js';
import { ResumingBody } from './resuming-body.js';
import { listTags, type TagListOptions } from './tags.js';
import { blobLocations, type BlobLocations } from './blob-locations.js';
import { RegistryHttp, type RegistryHttpOptions } from './http.js';
import type { HttpResponse } from './response.js';

/** Blobs up to this size go up in one PUT, read into memory (one request less than a PATCH). */
const MONOLITHIC_MAX = 1024 * 1024;

export interface RegistryStoreOptions extends RegistryHttpOptions {
  /** Ask for push access too (default: pull only). */
  push?: boolean;
  credential?: Credential;
  /** Where blobs were seen before (for cross-repository mounts); default the process-wide cache. */
  locations?: BlobLocations;
  /**
   * Send blobs in PATCH chunks of this size (at least 64 KiB); default: the process's `--chunk-size`,
   * else one streaming PATCH per blob (chunks only when the registry asks, OCI-Chunk-Min-Length).
   */
  chunkSize?: number;
}

/** A repository in a registry, as a Store: the distribution API's blobs, uploads and manifests endpoints. */
/** Blob uploads that a store of this process has claimed, by `host digest`: they settle with the repository the blob went to. */
const claims = new Map<string, Promise<string | undefined>>();

/**
 * Reads `s` until it ends or more than `max` bytes are in: the bytes, and whether it ended (then
 * they are all of it). When it did not end, the bytes are put back into `s` (read from it again,
 * first): here, in the tick of the last read, because a read that emptied a stream at its end has
 * its 'end' emitted at the next tick, after which nothing can be put back.
 */
export async function readHead(s: Readable, max: number, signal?: AbortSignal): Promise<{ bytes: Buffer; ended: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    for (let c: Buffer | null; size <= max && (c = s.read() as Buffer | null) !== null; size += c.length) chunks.push(c);
    if (size > max || s.readableEnded) {
      const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (size > max) s.unshift(bytes);
      return { bytes, ended: size <= max };
    }
    if (s.errored) throw s.errored;
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const done = (err?: unknown): void => {
        s.off('readable', ok).off('end', ok).off('error', done).off('close', ok);
        signal?.removeEventListener('abort', stop);
        if (err) reject(err);
        else resolve();
      };
      const ok = (): void => done();
      const stop = (): void => done(signal!.reason);
      s.once('readable', ok).once('end', ok).once('error', done).once('close', ok);
      signal?.addEventListener('abort', stop, { once: true });
    });
    if (s.destroyed && !s.readableEnded && !s.errored) throw new OciToolError('IO', 'the blob\'s stream was closed before its end');
  }
}

/** A promise that settles (with undefined) when `signal` aborts; never without one. */
function abortedOf(signal: AbortSignal | undefined): Promise<undefined> {
  if (!signal) return new Promise(() => undefined);
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((r) => signal.addEventListener('abort', () => r(undefined), { once: true }));
}

export class RegistryStore implements Store, StreamPusher, TaggedPusher {
  readonly name: string;
  readonly http: RegistryHttp;
  readonly scopes: string[];
  private readonly locations: BlobLocations;
  private readonly chunkSize: number | undefined;
  private readonly mountSources: string[] = [];
  /** Uploads a registry started in answer to a mount it did not do, by digest. */
  private readonly startedUploads = new Map<string, { location: string; minChunk: number }>();
  /**
   * Digests this store has seen the repository hold (found, pushed, mounted): not asked about again
   * (a build checks a layer before its upload and the graph copy again; an SBOM's empty config).
   * By `blobs DIGEST` and `manifests DIGEST`: a registry may hold bytes as one and not the other.
   */
  private readonly present = new Set<string>();

  constructor(
    readonly host: string,
    readonly repository: string,
    opts: RegistryStoreOptions = {},
  ) {
    this.name = `docker://${host}/${repository}`;
    this.locations = opts.locations ?? blobLocations;
    this.chunkSize = opts.chunkSize;
    this.http = new RegistryHttp(host, opts);
    this.scopes = [`repository:${repository}:${opts.push ? 'pull,push' : 'pull'}`];
  }

  private path(kind: 'blobs' | 'manifests', ref: string): string {
    // Only a tag or a digest goes into the URL: `../x/manifests/y` would name another repository.
    if (!isValidDigest(ref) && (kind === 'blobs' || !isValidTag(ref))) throw new OciToolError('INVALID_REFERENCE', `${this.name}: ${JSON.stringify(ref.slice(0, 80))} is neither a tag nor a digest`);
    return `/v2/${this.repository}/${kind}/${ref}`;
  }

  /**
   * The descriptor of a tag's or digest's manifest: from a HEAD (a registry's rate limit counts no
   * HEAD), or with `read`, from a GET whose bytes are kept for the fetch the caller makes next (one
   * request where HEAD and GET would be two).
   */
  async resolve(reference: string, opts: { read?: boolean } = {}): Promise<Descriptor> {
    const ref = reference === '' ? 'latest' : reference;
    const what = `manifest ${ref} of ${this.repository}`;
    if (opts.read) return this.resolveRead(ref, what, '');
    const head = await this.http.request('HEAD', this.path('manifests', ref), { headers: { accept: MANIFEST_ACCEPT.join(', ') }, scopes: this.scopes, what });
    const mediaType = (head.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const digest = head.headers.get('docker-content-digest');
    const size = head.contentLength();
    if (digest && isValidDigest(digest) && size !== undefined && isManifestType(mediaType) && !isValidDigest(ref)) return { mediaType, digest, size };
    // No usable HEAD answer (no digest, no length, …) or a digest reference, which we hash ourselves: read the manifest.
    return this.resolveRead(ref, what, mediaType);
  }

  /** resolve() from the manifest's bytes (GET), which are kept for fetch(); `headType`: a HEAD's Content-Type. */
  private async resolveRead(ref: string, what: string, headType: string): Promise<Descriptor> {
    const res = await this.http.request('GET', this.path('manifests', ref), { headers: { accept: MANIFEST_ACCEPT.join(', ') }, scopes: this.scopes, what });
    const served = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const bytes = await res.bytes(MAX_JSON_BYTES);
    const mediaType = isManifestType(served) ? served : headType;
    const type = isManifestType(mediaType) ? mediaType : detectManifestType(parseJson(bytes, what));
    if (type === undefined) throw new OciToolError('UNSUPPORTED', `${this.name}:${ref}: cannot tell the manifest type`);
    // A signed schema 1 manifest's digest is taken over its JWS payload, not over the bytes served.
    const d = isSchema1Type(type) ? schema1Digest(bytes, what) : digestOf(bytes);
    if (isValidDigest(ref) && ref !== d) throw new OciToolError('DIGEST_MISMATCH', `${this.name}@${ref}: registry sent a manifest hashing to ${d}`);
    // Hashed here: fetch() serves these bytes as verified (schema 1 ones are hashed there again, as always).
    if (!isSchema1Type(type)) this.remember(d, bytes);
    return { mediaType: type, digest: d, size: bytes.length };
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
    // A manifest this store has just pushed or read (and hashed): no GET.
    const known = kind === 'manifests' && !isSchema1Type(desc.mediaType) ? this.manifests.get(desc.digest) : undefined;
    if (known && known.length === desc.size) return markVerified(Readable.from([known]), desc.digest);
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
    // Reopenable (a GET again), for a destination whose upload broke mid-way.
    return markReopenable(pipelineCb(body, new VerifyingStream(desc, `${what} (from ${this.host})`), () => undefined), () => this.fetch(desc, opts));
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
    if (this.present.has(`${kind} ${desc.digest}`)) return true;
    const res = await this.http.request('HEAD', this.path(kind, desc.digest), {
      headers: kind === 'manifests' ? { accept: MANIFEST_ACCEPT.join(', ') } : {},
      scopes: this.scopes,
      what: `${kind} ${desc.digest}`,
      ok: (s) => (s >= 200 && s < 300) || s === 404,
    });
    if (res.status === 404) return false;
    if (kind === 'blobs') await this.locations.record(this.host, this.repository, desc.digest);
    this.present.add(`${kind} ${desc.digest}`);
    return true;
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
    // Another repository of this process is uploading the blob to the same registry (a sync of many
    // images on one base): wait for it, then mount from there instead of sending it a second time.
    const key = `${this.host} ${desc.digest}`;
    // Claimed before the first await: of stores asking at once, one uploads and the others wait.
    const other = claims.get(key);
    if (!other) this.claim(key, opts.signal);
    const uploadedTo = other ? await Promise.race([other, abortedOf(opts.signal)]) : undefined;
    opts.signal?.throwIfAborted();
    if (uploadedTo === this.repository) return { from: uploadedTo };
    const cached = await this.locations.candidates(this.host, this.repository, desc.digest);
    const candidates = [...new Set([...(uploadedTo ? [uploadedTo] : []), ...this.mountSources, ...cached])].slice(0, 3);
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
        this.present.add(`blobs ${desc.digest}`);
        this.claimed.get(desc.digest)?.(this.repository);
        await this.locations.record(this.host, this.repository, desc.digest);
        return { from };
      }
      // 202: the registry started an ordinary upload instead; push() will use it.
      const location = res?.status === 202 ? res.headers.get('location') : null;
      if (location) {
        this.startedUploads.set(desc.digest, { location, minChunk: minChunkOf(res!.headers.get('oci-chunk-min-length')) });
        this.claim(key, opts.signal);
        return undefined;
      }
    }
    this.claim(key, opts.signal);
    return undefined;
  }

  /** Settles the claims of this store's uploads, by digest: with the repository, or undefined if it failed. */
  private readonly claimed = new Map<string, (repository: string | undefined) => void>();

  /**
   * Says that this store will upload the blob next (a copy asks mount() first, then pushes): other
   * repositories wait for it. Only with a signal, which settles the claim if the copy stops before
   * its push; push settles it otherwise.
   */
  private claim(key: string, signal: AbortSignal | undefined): void {
    // An aborted copy will push nothing: a claim it made now would never be settled.
    if (!signal || signal.aborted || claims.has(key)) return;
    const digest = key.slice(key.indexOf(' ') + 1);
    let settle!: (repository: string | undefined) => void;
    const p = new Promise<string | undefined>((r) => (settle = r));
    const done = (repository: string | undefined): void => {
      signal.removeEventListener('abort', onAbort);
      if (claims.get(key) === p) claims.delete(key);
      this.claimed.delete(digest);
      settle(repository);
    };
    const onAbort = (): void => done(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    claims.set(key, p);
    this.claimed.set(digest, done);
  }

  /**
   * Uploads a blob (see upload.ts): a small one in one PUT; a larger one as one streaming PATCH,
   * resumed from where the registry got to when it breaks and the content can be reopened, or in
   * chunks where the registry or `chunkSize` asks for them; then the final PUT, which commits.
   */
  async push(desc: Descriptor, content: Readable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (isManifestType(desc.mediaType)) {
      const bytes = await readCapped(content, MAX_JSON_BYTES, desc.digest);
      // Checked here, not left to the registry: these bytes are also what tag() puts under a tag.
      const got = isSchema1Type(desc.mediaType) ? schema1Digest(bytes, `manifest ${desc.digest}`) : digestOf(bytes);
      if (got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: manifest ${desc.digest} to push hashes to ${got}`);
      await this.putManifest(desc, bytes, desc.digest, opts.signal);
      this.remember(desc.digest, bytes);
      return;
    }
    const what = `upload of blob ${desc.digest} to ${this.repository}`;
    // Verified on the way out: the final PUT (which commits the blob) happens only after the whole
    // stream has hashed right.
    const verifiedOf = (s: Readable): Readable => (isVerifiedFor(s, desc.digest) ? s : pipelineCb(s, new VerifyingStream(desc, `blob ${desc.digest}`), () => undefined));
    const verified = verifiedOf(content);
    const reopen = reopenerOf(content);
    const started = this.startedUploads.get(desc.digest);
    this.startedUploads.delete(desc.digest);
    try {
      const up = await BlobUpload.start(this, what, opts.signal, started);
      const chunk = this.chunkFor(up);
      if (desc.size >= 0 && desc.size <= (chunk ?? MONOLITHIC_MAX)) {
        const bytes = await readCapped(verified, Math.max(desc.size, 0), desc.digest);
        await up.commit(desc.digest, desc.size, bytes);
      } else {
        if (chunk) await up.chunks(verified, chunk);
        else await up.stream(verified, desc.size >= 0 ? desc.size : undefined, reopen && (async () => verifiedOf(await reopen())));
        await up.commit(desc.digest, desc.size);
      }
    } catch (err) {
      this.claimed.get(desc.digest)?.(undefined);
      throw err;
    } finally {
      verified.destroy();
    }
    this.present.add(`blobs ${desc.digest}`);
    this.claimed.get(desc.digest)?.(this.repository);
    await this.locations.record(this.host, this.repository, desc.digest);
  }

  /**
   * A blob whose digest is known only at its end (StreamPusher): one streaming PATCH while hashing,
   * `check` once the last byte is in, then the final PUT under the computed digest (committed even if
   * the registry had the blob: asking first would cost as much as the PUT). Nothing is kept to replay:
   * a failure throws (network trouble and retryable answers as such) and the caller makes the stream
   * again; the upload is cancelled.
   */
  async pushStream(content: Readable, opts: PushStreamOptions = {}): Promise<{ digest: string; size: number }> {
    opts.signal?.throwIfAborted();
    const hashing = new HashingStream('sha256');
    const hashed = pipelineCb(content, hashing, () => undefined);
    let up: BlobUpload | undefined;
    try {
      // The upload starts while the first MONOLITHIC_MAX bytes are read: a blob that ends within
      // them goes up in the final PUT, without a PATCH (an app layer, an SBOM, a small file).
      const starting = BlobUpload.start(this, `upload of a new blob to ${this.repository}`, opts.signal);
      starting.catch(() => undefined);
      const head = await readHead(hashed, MONOLITHIC_MAX, opts.signal).catch(async (err: unknown) => {
        await (await starting.catch(() => undefined))?.cancel();
        throw err;
      });
      up = await starting;
      const chunk = this.chunkFor(up);
      const whole = head.ended && (chunk === undefined || head.bytes.length <= chunk);
      if (!whole) {
        // A stream that did not end holds its head again (readHead put it back); one that ended
        // (a blob over the chunk size) cannot take it back: its chunks go from memory.
        const rest = head.ended ? Readable.from([head.bytes]) : hashed;
        if (chunk) await up.chunks(rest, chunk);
        else await up.stream(rest, undefined);
      }
      const put = { digest: hashing.digest, size: hashing.size };
      opts.check?.(put);
      await up.commit(put.digest, put.size, whole ? head.bytes : undefined);
      this.present.add(`blobs ${put.digest}`);
      await this.locations.record(this.host, this.repository, put.digest);
      return put;
    } catch (err) {
      hashed.destroy();
      await up?.cancel();
      throw err;
    }
  }

  /** The chunk size for an upload: the store's, the process's (`--chunk-size`), or what the registry asks; none means one PATCH. */
  private chunkFor(up: BlobUpload): number | undefined {
    const wanted = this.chunkSize ?? uploadChunkSize();
    if (wanted === undefined && up.minChunk === 0) return undefined;
    return Math.max(wanted ?? 0, up.minChunk, MIN_CHUNK_SIZE);
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
    this.present.add(`manifests ${desc.digest}`);
  }

  /** Every tag of the repository (see tags.ts for the bounds). */
  listTags(opts: TagListOptions = {}): Promise<string[]> {
    return listTags(this.http, this.repository, this.scopes, opts);
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    // A manifest this store just pushed is tagged from its bytes: no GET to read it back.
    const bytes = this.manifests.get(desc.digest) ?? (await fetchBytes(this, desc));
    await this.putManifest(desc, bytes, tag);
  }

  /** Pushes a manifest under a tag: one PUT, after which the registry holds it by digest too. */
  async pushTagged(desc: Descriptor, bytes: Buffer, tag: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const got = isSchema1Type(desc.mediaType) ? schema1Digest(bytes, `manifest ${desc.digest}`) : digestOf(bytes);
    if (got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: manifest ${desc.digest} to push hashes to ${got}`);
    await this.putManifest(desc, bytes, tag, opts.signal);
    this.remember(desc.digest, bytes);
  }

  /** The last few manifests pushed or read (at most 16 MiB together), hashed: for tag() and fetch(). */
  private readonly manifests = new Map<string, Buffer>();
  private remember(digest: string, bytes: Buffer): void {
    this.manifests.delete(digest);
    this.manifests.set(digest, bytes);
    let total = 0;
    for (const b of this.manifests.values()) total += b.length;
    for (const [k, b] of this.manifests) {
      if (total <= 16 << 20) break;
      this.manifests.delete(k);
      total -= b.length;
    }
  }
}
