import { Readable } from 'node:stream';
import { pipeline as pipelineCb } from 'node:stream';
import { fetchBytes, readCapped, type Store } from '../content/store.js';
import { digestOf, isValidDigest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { MANIFEST_ACCEPT, isManifestType } from '../spec/media-types.js';
import { detectManifestType, parseJson, MAX_JSON_BYTES } from '../spec/parse.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import type { Credential } from './auth/credentials.js';
import { RegistryError } from './errors.js';
import { blobLocations, type BlobLocations } from './blob-locations.js';
import { RegistryHttp, type RegistryHttpOptions } from './http.js';

export interface RegistryStoreOptions extends RegistryHttpOptions {
  /** Ask for push access too (default: pull only). */
  push?: boolean;
  credential?: Credential;
  /** Where blobs were seen before (for cross-repository mounts); default the process-wide cache. */
  locations?: BlobLocations;
  /** Told when a blob is mounted from another repository instead of uploaded. */
  onMount?: (desc: Descriptor, from: string) => void;
}

/** A repository in a registry, as a Store: the distribution API's blobs, uploads and manifests endpoints. */
export class RegistryStore implements Store {
  readonly name: string;
  readonly http: RegistryHttp;
  private readonly scopes: string[];
  private readonly locations: BlobLocations;
  private readonly onMount: ((desc: Descriptor, from: string) => void) | undefined;

  constructor(
    readonly host: string,
    readonly repository: string,
    opts: RegistryStoreOptions = {},
  ) {
    this.name = `docker://${host}/${repository}`;
    this.locations = opts.locations ?? blobLocations;
    this.onMount = opts.onMount;
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
    const size = Number(head.headers.get('content-length'));
    if (digest && isValidDigest(digest) && Number.isSafeInteger(size) && isManifestType(mediaType) && !isValidDigest(ref)) return { mediaType, digest, size };
    // No usable HEAD answer (or a digest reference, which we hash ourselves): read the manifest.
    const bytes = await this.getManifestBytes(ref, what);
    const type = isManifestType(mediaType) ? mediaType : detectManifestType(parseJson(bytes, what));
    if (type === undefined) throw new OciToolError('UNSUPPORTED', `${this.name}:${ref}: cannot tell the manifest type`);
    const d = digestOf(bytes);
    if (isValidDigest(ref) && ref !== d) throw new OciToolError('DIGEST_MISMATCH', `${this.name}@${ref}: registry sent a manifest hashing to ${d}`);
    return { mediaType: type, digest: d, size: bytes.length };
  }

  private async getManifestBytes(ref: string, what: string): Promise<Buffer> {
    const res = await this.http.request('GET', this.path('manifests', ref), { headers: { accept: MANIFEST_ACCEPT.join(', ') }, scopes: this.scopes, what });
    const buf = Buffer.from(await res.arrayBuffer());
    if (buf.length > MAX_JSON_BYTES) throw new OciToolError('TOO_LARGE', `${this.name}: ${what} is over ${MAX_JSON_BYTES} bytes`);
    return buf;
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const kind = isManifestType(desc.mediaType) ? 'manifests' : 'blobs';
    const what = `${kind === 'manifests' ? 'manifest' : 'blob'} ${desc.digest} of ${this.repository}`;
    const res = await this.http.request('GET', this.path(kind, desc.digest), { headers: kind === 'manifests' ? { accept: MANIFEST_ACCEPT.join(', ') } : {}, scopes: this.scopes, what });
    if (!res.body) throw new OciToolError('REGISTRY', `${this.name}: ${what}: empty response`);
    if (kind === 'blobs') await this.locations.record(this.host, this.repository, desc.digest);
    const src = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    return pipelineCb(src, new VerifyingStream(desc, `${what} (from ${this.host})`), () => undefined);
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

  async push(desc: Descriptor, content: Readable): Promise<void> {
    if (isManifestType(desc.mediaType)) {
      const bytes = await readCapped(content, MAX_JSON_BYTES, desc.digest);
      await this.putManifest(desc, bytes, desc.digest);
      return;
    }
    const what = `upload of blob ${desc.digest} to ${this.repository}`;
    let start: Response | undefined;
    for (const from of await this.locations.candidates(this.host, this.repository, desc.digest)) {
      // Mount: 201 = done; 202 = the registry started an ordinary upload instead, which we use.
      const q = new URLSearchParams({ mount: desc.digest, from });
      const res = await this.http
        .request('POST', `/v2/${this.repository}/blobs/uploads/?${q.toString()}`, { scopes: [...this.scopes, `repository:${from}:pull`], what: `mount of blob ${desc.digest} from ${from}`, headers: { 'content-length': '0' } })
        .catch(() => undefined); // a refused mount falls back to an upload
      if (res?.status === 201) {
        await res.body?.cancel();
        content.destroy();
        await this.locations.record(this.host, this.repository, desc.digest);
        this.onMount?.(desc, from);
        return;
      }
      if (res?.status === 202) {
        start = res;
        break;
      }
      await res?.body?.cancel();
    }
    start ??= await this.http.request('POST', `/v2/${this.repository}/blobs/uploads/`, { scopes: this.scopes, what, headers: { 'content-length': '0' } });
    const location = start.headers.get('location');
    await start.body?.cancel();
    if (!location) throw new RegistryError(`${this.host}: ${what}: no Location in the upload answer`, start.status, []);
    const url = new URL(location, this.http.base);
    url.searchParams.set('digest', desc.digest);
    // A stream cannot be sent twice: one attempt, verified on the way out.
    const body = pipelineCb(content, new VerifyingStream(desc, `blob ${desc.digest}`), () => undefined);
    const res = await this.http.request('PUT', url.href, {
      scopes: this.scopes,
      what,
      headers: { 'content-type': 'application/octet-stream' },
      body: () => Readable.toWeb(body) as unknown as NonNullable<RequestInit['body']>,
    });
    await res.body?.cancel();
    await this.locations.record(this.host, this.repository, desc.digest);
  }

  private async putManifest(desc: Descriptor, bytes: Buffer, ref: string): Promise<void> {
    const res = await this.http.request('PUT', this.path('manifests', ref), {
      scopes: this.scopes,
      what: `push of manifest ${desc.digest} to ${this.repository}:${ref}`,
      headers: { 'content-type': desc.mediaType },
      body: bytes,
    });
    const got = res.headers.get('docker-content-digest');
    await res.body?.cancel();
    if (got && got !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: registry stored manifest ${desc.digest} as ${got}`);
  }

  /** Every tag of the repository, following `Link` pagination. */
  async listTags(pageSize = 1000): Promise<string[]> {
    const tags: string[] = [];
    let next: string | undefined = `/v2/${this.repository}/tags/list?n=${pageSize}`;
    for (let page = 0; next !== undefined && page < 10_000; page++) {
      const res = await this.http.request('GET', next, { scopes: this.scopes, what: `tags of ${this.repository}` });
      const body = (await res.json()) as { tags?: string[] | null };
      tags.push(...(body.tags ?? []));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '');
      next = link ? new URL(link[1]!, res.url || this.http.base).href : undefined;
    }
    return tags;
  }

  async tag(desc: Descriptor, tag: string): Promise<void> {
    const bytes = await fetchBytes(this, desc);
    await this.putManifest(desc, bytes, tag);
  }
}
