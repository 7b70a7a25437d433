import { copyGraph } from '../content/copy.js';
import { fetchConfig, fetchManifest } from '../content/graph.js';
import type { Fetcher } from '../content/store.js';
import type { OciLayout } from '../layout/layout.js';
import { MediaType, isIndexType } from '../spec/media-types.js';
import { formatPlatform, normalizePlatform } from '../spec/platform.js';
import type { Descriptor, ImageIndex } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { platformOf } from './build.js';

export interface IndexSource {
  store: Fetcher;
  descriptor: Descriptor;
  name: string;
}

export interface IndexOptions {
  destination: OciLayout;
  tag: string;
  images: IndexSource[];
  /** Start from the index already at `tag` and add to it (entries of the same platform are replaced). */
  add?: boolean;
  format?: 'oci' | 'docker';
  annotations?: Record<string, string>;
}

/**
 * Assembles an image index (or Docker manifest list) from per-platform images, taking each one's
 * platform from its config; an index given as an image contributes all its entries. Every image's
 * blobs are copied into the destination layout first.
 */
export async function createIndex(opts: IndexOptions): Promise<Descriptor> {
  const dest = opts.destination;
  let entries: Descriptor[] = [];
  let annotations: Record<string, string> = {};
  if (opts.add) {
    const current = await dest.resolve(opts.tag);
    if (!isIndexType(current.mediaType)) throw new OciToolError('UNSUPPORTED', `${dest.name}:${opts.tag} is a ${current.mediaType}, not an index`);
    const node = await fetchManifest(dest, current);
    if (node.parsed.kind !== 'index') throw new OciToolError('UNSUPPORTED', `${dest.name}:${opts.tag} is not an index`);
    entries = [...node.parsed.index.manifests];
    annotations = { ...(node.parsed.index.annotations ?? {}) };
  }
  const key = (d: Descriptor): string => (d.platform ? formatPlatform(normalizePlatform(d.platform)) + (d.platform['os.version'] ? `:${d.platform['os.version']}` : '') : d.digest);
  for (const img of opts.images) {
    await copyGraph(img.store, dest, img.descriptor);
    const node = await fetchManifest(img.store, img.descriptor);
    const added: Descriptor[] = [];
    if (node.parsed.kind === 'index') added.push(...node.parsed.index.manifests);
    else if (node.parsed.kind === 'manifest') {
      const cfg = await fetchConfig(img.store, node.parsed.manifest.config);
      const { annotations: _drop, ...desc } = img.descriptor;
      added.push({ ...desc, mediaType: node.parsed.mediaType, platform: platformOf(cfg) });
    } else throw new OciToolError('UNSUPPORTED', `${img.name}: schema 1 images cannot go in an index (convert them first)`);
    for (const d of added) {
      const { annotations: a, ...rest } = d;
      const clean: Descriptor = a && Object.keys(a).some((k) => k !== 'org.opencontainers.image.ref.name') ? { ...rest, annotations: Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'org.opencontainers.image.ref.name')) } : rest;
      const i = entries.findIndex((e) => key(e) === key(clean));
      if (i >= 0) {
        if (!opts.add && entries[i]!.digest !== clean.digest) throw new OciToolError('USAGE', `${img.name}: a second image for platform ${key(clean)}`);
        entries[i] = clean;
      } else entries.push(clean);
    }
  }
  const format = opts.format ?? 'oci';
  if (format === 'docker' && entries.some((e) => e.mediaType !== MediaType.DockerManifest)) {
    throw new OciToolError('UNSUPPORTED', 'a Docker manifest list can only hold Docker schema 2 manifests (build with --format docker)');
  }
  Object.assign(annotations, opts.annotations ?? {});
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: entries,
    ...(format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  const desc = await dest.putBytes(JSON.stringify(index), index.mediaType!);
  await dest.tag(desc, opts.tag);
  return desc;
}
