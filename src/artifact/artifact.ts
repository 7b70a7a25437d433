/**
 * OCI 1.1 artifacts: arbitrary files packed as an image manifest with an `artifactType`, the empty
 * config and one layer per file (a directory becomes one tar+gzip layer made by the layer engine,
 * marked for unpacking as ORAS marks it), optionally attached to a subject; and the referrers of a
 * manifest, through the registry's referrers API or, where there is none, the fallback tag
 * `sha256-<hex>` holding an index of them (distribution-spec 1.1).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { canAddRoot, canPushTagged, fetchBytes, type Fetcher, type Resolver, type Store } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { EntryConverter } from '../layer/entries.js';
import { addEntries } from '../layer/sources.js';
import { writeLayer } from '../layer/write.js';
import type { CopyGraphOptions } from '../content/copy.js';
import { ImageWriter, withRemakes } from '../image/image-writer.js';
import { EMPTY_JSON_DIGEST, MediaType, isManifestType } from '../spec/media-types.js';
import { checkIndex, parseJson, parseManifest } from '../spec/parse.js';
import { Annotation, type Descriptor, type ImageIndex, type ImageManifest } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { Readable } from 'node:stream';

/** ORAS's annotations on a directory layer: unpack it, and the digest of the tar inside. */
export const UNPACK_ANNOTATION = 'io.deis.oras.content.unpack';
export const TAR_DIGEST_ANNOTATION = 'io.deis.oras.content.digest';

export const EMPTY_CONFIG: Descriptor = { mediaType: MediaType.OciEmpty, digest: EMPTY_JSON_DIGEST, size: 2 };

export interface ArtifactFile {
  /** A file, or a directory (packed as one tar+gzip layer). */
  path: string;
  /** Layer media type (default: `--media-type`, else application/octet-stream; a directory's is tar+gzip). */
  mediaType?: string;
  /** The file's content, made in memory (an SBOM): then `path` is only its name (the title), never read. */
  bytes?: Buffer;
}

export interface PackArtifactOptions {
  artifactType: string;
  files: ArtifactFile[];
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** Seconds since the epoch: `org.opencontainers.image.created` and the clamp on packed mtimes (SOURCE_DATE_EPOCH). */
  created?: number;
  /** The manifest this artifact is about (an SBOM's image, say). */
  subject?: Descriptor;
  /** Media type of file layers without their own (default application/octet-stream). */
  defaultMediaType?: string;
}

/**
 * Packs files into an artifact written to `destination` (any store: a layout, a registry repository,
 * an archive being written) and returns its manifest, not tagged: the caller tags it or attaches it
 * to its subject. Layers stream into the destination as they are read (see ImageWriter). The same
 * inputs give the same bytes. Into a layout, run it under the layout's lease (withLease) until the
 * artifact is tagged or listed, so that a concurrent gc keeps it.
 */
export async function packArtifact(destination: Store, opts: PackArtifactOptions & Pick<CopyGraphOptions, 'signal' | 'onProgress'>): Promise<Descriptor> {
  if (opts.files.length === 0) throw new OciToolError('USAGE', 'artifact pack: name at least one file or directory');
  const titles = new Set<string>();
  const layers: Descriptor[] = [];
  const writer = new ImageWriter(destination);
  try {
    const sink = await writer.sink();
    const sig = opts.signal ? { signal: opts.signal } : {};
    writer.document(MediaType.OciEmpty, Buffer.from('{}'));
    for (const f of opts.files) {
      const title = basename(f.path.replace(/\/+$/, ''));
      if (titles.has(title)) throw new OciToolError('USAGE', `artifact pack: two inputs are named ${JSON.stringify(title)} (titles must differ)`);
      titles.add(title);
      if (f.bytes !== undefined) {
        const bytes = f.bytes;
        const put = await withRemakes(`artifact file ${title}`, () => sink.pushStream(Readable.from([bytes]), sig), sig);
        layers.push({ mediaType: f.mediaType ?? opts.defaultMediaType ?? 'application/octet-stream', digest: put.digest, size: put.size, annotations: { [Annotation.Title]: title } });
        continue;
      }
      let st;
      try {
        st = await stat(f.path);
      } catch {
        throw new OciToolError('NOT_FOUND', `artifact pack: ${f.path}: no such file or directory`);
      }
      if (st.isDirectory()) {
        const convOpts = opts.created !== undefined ? { mtimeClamp: opts.created } : {};
        const written = await withRemakes(`artifact layer ${f.path}`, () => writeLayer(sink, addEntries(f.path, title, new EntryConverter(convOpts)), { compression: 'gzip', ...sig }), sig);
        layers.push({
          mediaType: f.mediaType ?? MediaType.OciLayerGzip,
          digest: written.descriptor.digest,
          size: written.descriptor.size,
          annotations: { [Annotation.Title]: title, [TAR_DIGEST_ANNOTATION]: written.diffId, [UNPACK_ANNOTATION]: 'true' },
        });
      } else if (st.isFile()) {
        const put = await withRemakes(`artifact file ${f.path}`, () => sink.pushStream(createReadStream(f.path, { highWaterMark: 1 << 20 }), sig), sig);
        layers.push({ mediaType: f.mediaType ?? opts.defaultMediaType ?? 'application/octet-stream', digest: put.digest, size: put.size, annotations: { [Annotation.Title]: title } });
      } else {
        throw new OciToolError('USAGE', `artifact pack: ${f.path} is neither a file nor a directory`);
      }
    }
    const annotations: Record<string, string> = { ...(opts.annotations ?? {}) };
    if (opts.created !== undefined) annotations[Annotation.Created] ??= new Date(opts.created * 1000).toISOString().replace(/\.000Z$/, 'Z');
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: opts.artifactType,
      config: EMPTY_CONFIG,
      layers,
      ...(opts.subject ? { subject: { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size } } : {}),
      ...(Object.keys(annotations).length ? { annotations: Object.fromEntries(Object.entries(annotations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) } : {}),
    };
    const root = writer.document(MediaType.OciManifest, Buffer.from(JSON.stringify(manifest)));
    await writer.write(root, { ...sig, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    return root;
  } finally {
    await writer.close();
  }
}

/** The fallback tag that holds the referrers of `digest` where the referrers API is missing. */
export function fallbackTag(digest: string): string {
  return digest.replace(':', '-').slice(0, 128);
}

/** What a referrer's entry in a referrers index says of it. */
export function referrerEntry(desc: Descriptor, doc: ImageManifest | ImageIndex): Descriptor {
  const artifactType = doc.artifactType ?? ('config' in doc ? doc.config.mediaType : undefined);
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, ...(artifactType ? { artifactType } : {}), ...(doc.annotations ? { annotations: doc.annotations } : {}) };
}

/** A store that may answer the referrers API (a registry). */
interface ReferrersApi {
  referrersApi?(digest: string): Promise<ImageIndex | undefined>;
}

type ReadStore = Fetcher & Resolver & ReferrersApi & { readonly name?: string; roots?(): Promise<Descriptor[]> };

/**
 * The referrers of `subject` in a store: the registry's referrers API when it has one; else the
 * fallback tag's index; and in a layout, every manifest listed in index.json whose subject it is.
 */
export async function referrers(store: ReadStore, subject: Descriptor, opts: { artifactType?: string } = {}): Promise<Descriptor[]> {
  const found = new Map<string, Descriptor>();
  const api = await store.referrersApi?.(subject.digest);
  if (api) for (const d of api.manifests) found.set(d.digest, d);
  else {
    const fallback = await readFallback(store, subject.digest);
    for (const d of fallback?.manifests ?? []) found.set(d.digest, d);
  }
  if (store.roots) {
    for (const root of await store.roots()) {
      if (found.has(root.digest) || !isManifestType(root.mediaType)) continue;
      try {
        const bytes = await fetchBytes(store, root);
        const parsed = parseManifest(bytes, `manifest ${root.digest}`, root.mediaType);
        const doc = parsed.kind === 'manifest' ? parsed.manifest : parsed.kind === 'index' ? parsed.index : undefined;
        if (doc?.subject?.digest === subject.digest) found.set(root.digest, referrerEntry(root, doc));
      } catch {
        /* not readable as a manifest: not a referrer */
      }
    }
  }
  return [...found.values()].filter((d) => opts.artifactType === undefined || d.artifactType === opts.artifactType);
}

async function readFallback(store: ReadStore, digest: string): Promise<ImageIndex | undefined> {
  let desc: Descriptor;
  try {
    desc = await store.resolve(fallbackTag(digest));
  } catch (err) {
    if (err instanceof OciToolError && err.code === 'NOT_FOUND') return undefined;
    if ((err as { status?: number }).status === 404) return undefined;
    throw err;
  }
  const bytes = await fetchBytes(store, desc);
  return checkIndex(parseJson(bytes, `referrers index ${fallbackTag(digest)}`), `referrers index ${fallbackTag(digest)}`);
}

/**
 * Records `referrer` (already stored) as a referrer of `subject` in `store`: nothing to do where the
 * referrers API answers (the registry indexes subjects itself) or in a layout (index.json lists it);
 * otherwise the fallback tag's index gets the entry, keeping the entries already there.
 */
export async function attach(store: Store & ReferrersApi & { readonly name?: string }, referrer: Descriptor, subject: Descriptor): Promise<void> {
  if (canAddRoot(store)) return; // a layout: the referrer is listed in index.json
  if (await store.referrersApi?.(subject.digest)) return;
  const bytes = await fetchBytes(store, referrer);
  const parsed = parseManifest(bytes, `manifest ${referrer.digest}`, referrer.mediaType);
  const doc = parsed.kind === 'manifest' ? parsed.manifest : parsed.kind === 'index' ? parsed.index : undefined;
  if (!doc) throw new OciToolError('UNSUPPORTED', `${referrer.digest}: a schema 1 manifest cannot be a referrer`);
  const index: ImageIndex = (await readFallback(store, subject.digest)) ?? { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  if (index.manifests.some((d) => d.digest === referrer.digest)) return;
  index.manifests.push(referrerEntry(referrer, doc));
  const out = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: index.manifests }));
  const desc: Descriptor = { mediaType: MediaType.OciIndex, digest: digestOf(out), size: out.length };
  if (canPushTagged(store)) return store.pushTagged(desc, out, fallbackTag(subject.digest)); // one PUT by tag
  if (!(await store.exists(desc))) await store.push(desc, Readable.from([out]));
  await store.tag(desc, fallbackTag(subject.digest));
}

