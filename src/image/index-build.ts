import { copyGraph } from '../content/copy.js';
import { convertGraph, formatOf } from '../convert/convert.js';
import { fetchConfig, fetchManifest } from '../content/graph.js';
import { Readable } from 'node:stream';
import { underLease, type Fetcher, type Store } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { OciLayout, setTag, withoutRefName } from '../layout/layout.js';
import { MediaType, isIndexType, isManifestType } from '../spec/media-types.js';
import { formatPlatform, normalizePlatform } from '../spec/platform.js';
import { Annotation, type Descriptor, type ImageIndex } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { platformOf } from './build.js';

export interface IndexSource {
  store: Fetcher;
  descriptor: Descriptor;
  name: string;
}

export interface IndexOptions {
  /** Where the index goes: an OCI layout (written under its index lock), or any store that takes manifests and tags (a registry repository). */
  destination: OciLayout | Store;
  tag: string;
  images: IndexSource[];
  /** Start from the index already at `tag` and add to it (entries of the same platform are replaced). */
  add?: boolean;
  format?: 'oci' | 'docker';
  annotations?: Record<string, string>;
  /**
   * Into a layout, keep Docker schema 2 images as they are in an OCI index (bytes and digests); by
   * default they are converted to OCI, which other tools need there.
   */
  preserveDigests?: boolean;
  /** The images' entries, read and checked beforehand (see planIndex); read here when not given. */
  plan?: IndexPlan;
  concurrency?: number;
  signal?: AbortSignal;
}

/** The entries each image contributes to an index, checked against the index's format: read only. */
export interface IndexPlan {
  format: 'oci' | 'docker';
  added: { img: IndexSource; entries: Descriptor[] }[];
}

const DOCKER_LIST_ONLY = 'a Docker manifest list can only hold Docker schema 2 manifests (build with --format docker, or copy them with --format docker)';

/**
 * Reads the entries each image would add to an index (a manifest: itself with its config's platform;
 * an index: its entries) and checks them against `format`, writing nothing: a command that would
 * fail (OCI images in a Docker list) fails before its destination is created or touched.
 */
export async function planIndex(images: IndexSource[], opts: Pick<IndexOptions, 'format' | 'add'> = {}): Promise<IndexPlan> {
  const format = opts.format ?? 'oci';
  const added: IndexPlan['added'] = [];
  const seen = new Map<string, string>();
  for (const img of images) {
    const node = await fetchManifest(img.store, img.descriptor);
    const entries: Descriptor[] = [];
    if (node.parsed.kind === 'index') entries.push(...node.parsed.index.manifests);
    else if (node.parsed.kind === 'manifest') {
      const cfg = await fetchConfig(img.store, node.parsed.manifest.config);
      const { annotations: _drop, ...desc } = img.descriptor;
      entries.push({ ...desc, mediaType: node.parsed.mediaType, platform: platformOf(cfg) });
    } else throw new OciToolError('UNSUPPORTED', `${img.name}: schema 1 images cannot go in an index (convert them first)`);
    const clean = entries.map(withoutRefName);
    const bad = clean.find((e) => e.mediaType !== MediaType.DockerManifest);
    if (format === 'docker' && bad) throw new OciToolError('UNSUPPORTED', `${img.name}: ${bad.digest} is a ${bad.mediaType}: ${DOCKER_LIST_ONLY}`);
    // A new index takes one image per platform (add replaces one with the next).
    for (const e of clean) {
      const had = seen.get(platformKey(e));
      if (!opts.add && had !== undefined && had !== e.digest) throw new OciToolError('USAGE', `${img.name}: a second image for platform ${platformKey(e)}`);
      seen.set(platformKey(e), e.digest);
    }
    added.push({ img, entries: clean });
  }
  return { format, added };
}

/**
 * Assembles an image index (or Docker manifest list) from per-platform images, taking each one's
 * platform from its config; an index given as an image contributes all its entries. The images are
 * read and checked first (planIndex), and with `add` the index at `tag` too, before anything is
 * written. Then every image's blobs are copied into the destination (under a lease in a layout, so
 * that gc keeps them) and the index is stored and tagged: in a layout under the index lock, the index
 * at `tag` read again there, so that concurrent runs adding to the same index all land; in a registry
 * pushed as a manifest and put under the tag.
 */
export async function createIndex(opts: IndexOptions): Promise<Descriptor> {
  const plan = opts.plan ?? (await planIndex(opts.images, opts));
  const dest = opts.destination;
  if (opts.add) await currentIndex(dest, opts.tag, plan.format); // refused before any copy
  return underLease(dest, async () => {
    const copyOpts = { ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}), ...(opts.signal ? { signal: opts.signal } : {}) };
    // Into a layout, an OCI index gets OCI images (what other tools open there), as copy does.
    const toOci = dest instanceof OciLayout && plan.format === 'oci' && !opts.preserveDigests;
    const added: IndexPlan['added'] = [];
    for (const a of plan.added) {
      if (!toOci || a.entries.every((e) => formatOf(e.mediaType) === 'oci')) {
        await copyGraph(a.img.store, dest, a.img.descriptor, copyOpts);
        added.push(a);
      } else added.push({ img: a.img, entries: await converted(a, await convertGraph(a.img.store, dest, a.img.descriptor, { ...copyOpts, format: 'oci' }), dest) });
    }
    const done: IndexPlan = { format: plan.format, added };
    if (dest instanceof OciLayout) {
      let written: Descriptor | undefined;
      await dest.updateIndex(async (layoutIndex) => {
        const current = opts.add ? await currentIndex(dest, opts.tag, plan.format, layoutIndex) : undefined;
        const index = assemble(done, current, opts.annotations);
        written = await dest.putBytes(JSON.stringify(index), index.mediaType!);
        setTag(layoutIndex, written, opts.tag);
      });
      return written!;
    }
    const current = opts.add ? await currentIndex(dest, opts.tag, plan.format) : undefined;
    const index = assemble(done, current, opts.annotations);
    const bytes = Buffer.from(JSON.stringify(index));
    const written: Descriptor = { mediaType: index.mediaType!, digest: digestOf(bytes), size: bytes.length };
    await dest.push(written, Readable.from([bytes]), opts.signal ? { signal: opts.signal } : {});
    await dest.tag(written, opts.tag);
    return written;
  });
}

/** An image's entries pointed at what its conversion stored (an index's children keep their order). */
async function converted(a: IndexPlan['added'][number], root: Descriptor, dest: OciLayout): Promise<Descriptor[]> {
  const repoint = (e: Descriptor, to: Descriptor): Descriptor => ({ ...e, mediaType: to.mediaType, digest: to.digest, size: to.size });
  if (!isIndexType(root.mediaType)) return a.entries.map((e) => repoint(e, root));
  const node = await fetchManifest(dest, root);
  if (node.parsed.kind !== 'index') throw new OciToolError('UNSUPPORTED', `${a.img.name}: converted to ${root.digest}, which is not an index`);
  const children = node.parsed.index.manifests;
  return a.entries.map((e, i) => repoint(e, children[i]!));
}

/** The index at `tag` (for add): its entries and annotations, checked against `format`. */
async function currentIndex(dest: OciLayout | Store, tag: string, format: 'oci' | 'docker', layoutIndex?: ImageIndex): Promise<ImageIndex> {
  let desc: Descriptor | undefined;
  if (dest instanceof OciLayout) {
    desc = (layoutIndex ?? (await dest.readIndex())).manifests.find((d) => d.annotations?.[Annotation.RefName] === tag && isManifestType(d.mediaType));
    if (desc === undefined) throw new OciToolError('NOT_FOUND', `${dest.name}:${tag}: no such tag`);
  } else desc = await dest.resolve(tag);
  if (!isIndexType(desc.mediaType)) throw new OciToolError('UNSUPPORTED', `${dest.name}:${tag} is a ${desc.mediaType}, not an index`);
  const node = await fetchManifest(dest, desc);
  if (node.parsed.kind !== 'index') throw new OciToolError('UNSUPPORTED', `${dest.name}:${tag} is not an index`);
  if (format === 'docker' && node.parsed.index.manifests.some((e) => e.mediaType !== MediaType.DockerManifest)) throw new OciToolError('UNSUPPORTED', `${dest.name}:${tag} holds OCI entries: ${DOCKER_LIST_ONLY}`);
  return node.parsed.index;
}

/** The new index: the current one's entries (with add) and the plan's, a platform's image replaced. */
function assemble(plan: IndexPlan, current: ImageIndex | undefined, extra: Record<string, string> | undefined): ImageIndex {
  const entries: Descriptor[] = [...(current?.manifests ?? [])];
  const annotations: Record<string, string> = { ...(current?.annotations ?? {}) };
  for (const { entries: more } of plan.added) {
    for (const clean of more) {
      const i = entries.findIndex((e) => platformKey(e) === platformKey(clean));
      if (i >= 0) entries[i] = clean;
      else entries.push(clean);
    }
  }
  Object.assign(annotations, extra ?? {});
  return {
    schemaVersion: 2,
    mediaType: plan.format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: entries,
    ...(plan.format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
}

const platformKey = (d: Descriptor): string => (d.platform ? formatPlatform(normalizePlatform(d.platform)) + (d.platform['os.version'] ? `:${d.platform['os.version']}` : '') : d.digest);
