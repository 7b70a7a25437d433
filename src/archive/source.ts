/**
 * Archives as read-only stores: a `docker save` tar (docker-archive:) and a tar of an OCI layout
 * (oci-archive:). Both are indexed once (headers only) and their members streamed from the file as
 * they are fetched, verified like any blob. A gzip-compressed archive is first decompressed to a
 * temp file (bounded, and removed on interruption: inflate.ts). JSON members (manifest.json,
 * index.json, configs, manifests) are refused unread over the 4 MiB cap; each member is sniffed and
 * hashed at most once, however often manifest.json lists it.
 */
import { open } from 'node:fs/promises';
import { Readable, pipeline as pipelineCb } from 'node:stream';
import type { ReadOnlyStore } from '../content/store.js';
import { digestOf, isValidDigest, parseDigest } from '../digest/digest.js';
import { VerifyingStream, markVerified } from '../digest/verify.js';
import { detectCompression, type Compression } from '../layer/compression.js';
import { formatDockerReference, parseDockerName, type DockerReference } from '../reference/docker-name.js';
import { MediaType, isManifestType } from '../spec/media-types.js';
import { checkImageConfig, checkIndex, detectManifestType, parseJson } from '../spec/parse.js';
import { Annotation, type Descriptor, type ImageIndex } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { abortWith } from '../util/fs.js';
import { inflateToTemp } from './inflate.js';
import { TarIndex, type TarMember } from './tar-index.js';

const bad = (what: string, why: string): OciToolError => new OciToolError('INVALID_ARCHIVE', `${what}: ${why}`);

/** Opens an archive for reading, decompressing a gzipped one into a temp file first (bounded: see inflate.ts). */
async function openTar(file: string, what: string): Promise<{ tar: TarIndex; cleanup: () => Promise<void> }> {
  let head = Buffer.alloc(0);
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(4);
      await fh.read(head, 0, 4, 0);
    } finally {
      await fh.close();
    }
  } catch {
    /* TarIndex.open reports it */
  }
  if (detectCompression(head) !== 'gzip') return { tar: await TarIndex.open(file, what), cleanup: async () => undefined };
  const { path, cleanup } = await inflateToTemp(file, what);
  try {
    return { tar: await TarIndex.open(path, what), cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Streams a member verified against `desc`; `signal` destroys the stream (and closes the file). */
function verifiedMember(tar: TarIndex, m: TarMember, desc: Descriptor, what: string, signal: AbortSignal | undefined): Readable {
  signal?.throwIfAborted();
  const out = pipelineCb(tar.stream(m), new VerifyingStream(desc, what), () => undefined);
  return signal ? abortWith(signal, out) : out;
}

interface ArchivedImage {
  manifest: Buffer;
  descriptor: Descriptor;
  /** Blob digest → member. */
  blobs: Map<string, TarMember>;
}

interface DockerManifestItem {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
  LayerSources?: Record<string, Descriptor>;
}

/** Whether two docker names are the same image (`busybox` = `docker.io/library/busybox:latest`). */
function sameName(a: DockerReference, tag: string): boolean {
  try {
    return formatDockerReference(parseDockerName(tag)) === formatDockerReference(a);
  } catch {
    return false;
  }
}

/**
 * A `docker save` tar, read through its `manifest.json` (legacy `<id>/layer.tar` members and Docker 25's
 * `blobs/sha256/<hex>` alike). The image is presented as a Docker schema 2 manifest made from the
 * config and layer files, as skopeo presents it: a plain tar layer's digest is its diffID (checked as
 * it is read), a compressed layer's is hashed once when the archive is opened.
 */
export class DockerArchiveSource implements ReadOnlyStore {
  readonly name: string;
  private image?: Promise<ArchivedImage>;
  private readonly kinds = new Map<TarMember, Promise<Compression>>();

  private constructor(
    private readonly tar: TarIndex,
    readonly file: string,
    private readonly ref: DockerReference | undefined,
    readonly close: () => Promise<void>,
  ) {
    this.name = `docker-archive:${file}`;
  }

  static async open(file: string, ref?: DockerReference): Promise<DockerArchiveSource> {
    const { tar, cleanup } = await openTar(file, `docker-archive:${file}`);
    return new DockerArchiveSource(tar, file, ref, cleanup);
  }

  private load(): Promise<ArchivedImage> {
    this.image ??= this.loadNow();
    return this.image;
  }

  private async loadNow(): Promise<ArchivedImage> {
    const what = this.name;
    const mm = this.tar.find('manifest.json');
    if (!mm && this.tar.find('oci-layout')) return this.loadLayout();
    if (!mm) throw bad(what, 'no manifest.json (not a docker save archive, or a truncated one)');
    const items = await this.tar.json(mm, `${what}: manifest.json`);
    if (!Array.isArray(items) || items.length === 0) throw bad(what, 'manifest.json lists no images');
    let item: DockerManifestItem;
    if (this.ref) {
      const hits = (items as DockerManifestItem[]).filter((it) => (it.RepoTags ?? []).some((t) => sameName(this.ref!, t)));
      if (hits.length === 0) throw new OciToolError('NOT_FOUND', `${what}: no image tagged ${formatDockerReference(this.ref)} (tags: ${(items as DockerManifestItem[]).flatMap((it) => it.RepoTags ?? []).join(', ') || 'none'})`);
      item = hits[0]!;
    } else {
      if (items.length > 1) throw new OciToolError('AMBIGUOUS', `${what}: holds ${items.length} images; name one with docker-archive:FILE:NAME:TAG`);
      item = items[0] as DockerManifestItem;
    }
    return this.loadItem(item);
  }

  /** The images the archive holds, one entry per name (RepoTags) or one unnamed, as an index lists them. */
  async list(): Promise<Descriptor[]> {
    const mm = this.tar.find('manifest.json');
    if (!mm && this.tar.find('oci-layout')) return (await new OciArchiveSource(this.tar, this.file, async () => undefined).indexDocument()).manifests;
    if (!mm) throw bad(this.name, 'no manifest.json (not a docker save archive, or a truncated one)');
    const items = await this.tar.json(mm, `${this.name}: manifest.json`);
    if (!Array.isArray(items)) throw bad(this.name, 'manifest.json is not a list');
    const out: Descriptor[] = [];
    for (const item of items as DockerManifestItem[]) {
      const { descriptor } = await this.loadItem(item);
      const tags = item.RepoTags ?? [];
      if (tags.length === 0) out.push(descriptor);
      for (const t of tags) out.push({ ...descriptor, annotations: { [Annotation.RefName]: t } });
    }
    return out;
  }

  private async loadItem(item: DockerManifestItem): Promise<ArchivedImage> {
    const what = this.name;
    if (typeof item.Config !== 'string' || !Array.isArray(item.Layers)) throw bad(what, 'manifest.json entry lacks Config or Layers');
    const blobs = new Map<string, TarMember>();
    const member = (path: string): TarMember => {
      const m = this.tar.find(path);
      if (!m) throw bad(what, `${path} is listed in manifest.json but missing from the archive (truncated?)`);
      return m;
    };
    const cm = member(item.Config);
    const configBytes = await this.tar.read(cm, `${what}: ${item.Config}`);
    const config = checkImageConfig(parseJson(configBytes, `${what}: ${item.Config}`), `${what}: ${item.Config}`);
    const configDesc: Descriptor = { mediaType: MediaType.DockerConfig, digest: digestOf(configBytes), size: configBytes.length };
    blobs.set(configDesc.digest, cm);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== item.Layers.length) throw bad(what, `${item.Layers.length} layers in manifest.json but ${diffIds.length} diff_ids in ${item.Config}`);
    const layers: Descriptor[] = [];
    for (const [i, path] of item.Layers.entries()) {
      const foreign = item.LayerSources?.[diffIds[i]!];
      if (foreign && !this.tar.find(path)) {
        layers.push(foreign);
        continue;
      }
      const m = member(path);
      const kind = await this.compressionOf(m);
      // Docker 25 names blobs by digest; a plain tar is its own diffID; anything else is hashed now.
      const named = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(path);
      const digest = named ? `sha256:${named[1]}` : kind === 'none' ? diffIds[i]! : await this.tar.digest(m);
      const mediaType = kind === 'gzip' ? MediaType.DockerLayerGzip : kind === 'zstd' ? MediaType.OciLayerZstd : MediaType.DockerLayer;
      layers.push({ mediaType, digest, size: m.size });
      blobs.set(digest, m);
    }
    const field = (d: Descriptor): string => `{"mediaType":${JSON.stringify(d.mediaType)},"size":${d.size},"digest":${JSON.stringify(d.digest)}${d.urls ? `,"urls":${JSON.stringify(d.urls)}` : ''}}`;
    const manifest = Buffer.from(`{"schemaVersion":2,"mediaType":"${MediaType.DockerManifest}","config":${field(configDesc)},"layers":[${layers.map(field).join(',')}]}`);
    return { manifest, descriptor: { mediaType: MediaType.DockerManifest, digest: digestOf(manifest), size: manifest.length }, blobs };
  }

  /**
   * A save with an OCI layout and no manifest.json (Docker 25+ can load those): the image is picked
   * from index.json, by the `io.containerd.image.name` or tag annotation when a name is given.
   */
  private async loadLayout(): Promise<ArchivedImage> {
    const layout = new OciArchiveSource(this.tar, this.file, async () => undefined);
    let desc: Descriptor;
    if (this.ref) {
      const index = await layout.indexDocument();
      const want = formatDockerReference(this.ref);
      const hit = index.manifests.find((d) => {
        const full = d.annotations?.[Annotation.ContainerdImageName];
        return full !== undefined && sameName(this.ref!, full);
      });
      if (!hit) throw new OciToolError('NOT_FOUND', `${this.name}: no image named ${want} in its index.json`);
      desc = hit;
    } else desc = await layout.resolve('');
    const manifest = await this.tar.read(layout.memberOf(desc.digest, this.name), `${this.name}: manifest ${desc.digest}`);
    if (digestOf(manifest) !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${this.name}: manifest ${desc.digest} hashes to ${digestOf(manifest)}`);
    const blobs = new Map<string, TarMember>();
    for (const [name, m] of this.tar.members) {
      const hit = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
      if (hit && m.type === 'file') blobs.set(`sha256:${hit[1]}`, m);
    }
    return { manifest, descriptor: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }, blobs };
  }

  /** A member's compression, sniffed once. */
  private compressionOf(m: TarMember): Promise<Compression> {
    let k = this.kinds.get(m);
    if (!k) {
      k = this.tar.head(m).then(detectCompression);
      this.kinds.set(m, k);
    }
    return k;
  }

  async resolve(reference: string): Promise<Descriptor> {
    const img = await this.load();
    if (reference !== '' && isValidDigest(reference) && reference !== img.descriptor.digest) throw new OciToolError('NOT_FOUND', `${this.name}: holds ${img.descriptor.digest}, not ${reference}`);
    return img.descriptor;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    const img = await this.load();
    return desc.digest === img.descriptor.digest || img.blobs.has(desc.digest);
  }

  async fetch(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const img = await this.load();
    if (desc.digest === img.descriptor.digest) return markVerified(Readable.from([img.manifest]), desc.digest);
    const m = img.blobs.get(desc.digest);
    if (!m) throw new OciToolError('NOT_FOUND', `blob ${desc.digest} not found in ${this.name}`);
    return verifiedMember(this.tar, m, desc, `blob ${desc.digest} in ${this.name}`, opts.signal);
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return (await this.load()).blobs.get(digest)?.size;
  }
}

/** A tar of an OCI image layout (skopeo's oci-archive:), read in place. */
export class OciArchiveSource implements ReadOnlyStore {
  readonly name: string;
  private indexDoc?: Promise<ImageIndex>;

  constructor(
    private readonly tar: TarIndex,
    readonly file: string,
    readonly close: () => Promise<void>,
  ) {
    this.name = `oci-archive:${file}`;
  }

  /** The entries of the archive's index.json (what `ls` shows). */
  async list(): Promise<Descriptor[]> {
    return (await this.index()).manifests;
  }

  /** The same entries, as a layout's roots (referrers are found among them). */
  roots(): Promise<Descriptor[]> {
    return this.list();
  }

  /** index.json of the layout in the archive. */
  indexDocument(): Promise<ImageIndex> {
    return this.index();
  }

  /** The member holding a blob; throws naming `what` when it is missing. */
  memberOf(digest: string, what: string): TarMember {
    const m = this.member(digest);
    if (!m) throw new OciToolError('NOT_FOUND', `blob ${digest} not found in ${what} (truncated?)`);
    return m;
  }

  static async open(file: string): Promise<OciArchiveSource> {
    const { tar, cleanup } = await openTar(file, `oci-archive:${file}`);
    return new OciArchiveSource(tar, file, cleanup);
  }

  private index(): Promise<ImageIndex> {
    this.indexDoc ??= (async () => {
      if (!this.tar.find('oci-layout')) throw bad(this.name, 'no oci-layout file (not a tar of an OCI layout, or a truncated one)');
      const im = this.tar.find('index.json');
      if (!im) throw bad(this.name, 'no index.json (truncated?)');
      return checkIndex(await this.tar.json(im, `${this.name}: index.json`), `${this.name}: index.json`);
    })();
    return this.indexDoc;
  }

  private member(digest: string): TarMember | undefined {
    const { algorithm, encoded } = parseDigest(digest);
    return this.tar.find(`blobs/${algorithm}/${encoded}`);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const index = await this.index();
    if (reference === '') {
      if (index.manifests.length === 1) return index.manifests[0]!;
      throw new OciToolError(index.manifests.length ? 'AMBIGUOUS' : 'NOT_FOUND', `${this.name}: holds ${index.manifests.length} images; name one with oci-archive:FILE:TAG`);
    }
    const hit = isValidDigest(reference) ? index.manifests.find((d) => d.digest === reference) : index.manifests.find((d) => d.annotations?.[Annotation.RefName] === reference && isManifestType(d.mediaType));
    if (hit) return hit;
    if (isValidDigest(reference)) {
      const m = this.member(reference);
      if (m) {
        const mediaType = detectManifestType(await this.tar.json(m, `${this.name}@${reference}`));
        if (mediaType && isManifestType(mediaType)) return { mediaType, digest: reference, size: m.size };
      }
    }
    throw new OciToolError('NOT_FOUND', `${this.name}:${reference}: no such image`);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    const m = this.member(desc.digest);
    return m !== undefined && (desc.size < 0 || m.size === desc.size);
  }

  async fetch(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const m = this.member(desc.digest);
    if (!m) throw new OciToolError('NOT_FOUND', `blob ${desc.digest} not found in ${this.name} (truncated?)`);
    return verifiedMember(this.tar, m, desc, `blob ${desc.digest} in ${this.name}`, opts.signal);
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return this.member(digest)?.size;
  }
}

