import { copyGraph } from '../content/copy.js';
import { fetchConfig, fetchManifest } from '../content/graph.js';
import type { Fetcher } from '../content/store.js';
import { setTag, type OciLayout } from '../layout/layout.js';
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
 * blobs are copied into the destination layout first (under a lease, so that gc keeps them); then,
 * under the index lock, the index at `tag` is read (with `add`), extended, stored and tagged, so that
 * concurrent runs adding to the same index all land.
 */
export async function createIndex(opts: IndexOptions): Promise<Descriptor> {
  return opts.destination.withLease(() => assemble(opts));
}

async function assemble(opts: IndexOptions): Promise<Descriptor> {
  const dest = opts.destination;
  const added: { name: string; entries: Descriptor[] }[] = [];
  for (const img of opts.images) {
    await copyGraph(img.store, dest, img.descriptor);
    const node = await fetchManifest(img.store, img.descriptor);
    const entries: Descriptor[] = [];
    if (node.parsed.kind === 'index') entries.push(...node.parsed.index.manifests);
    else if (node.parsed.kind === 'manifest') {
      const cfg = await fetchConfig(img.store, node.parsed.manifest.config);
      const { annotations: _drop, ...desc } = img.descriptor;
      entries.push({ ...desc, mediaType: node.parsed.mediaType, platform: platformOf(cfg) });
    } else throw new OciToolError('UNSUPPORTED', `${img.name}: schema 1 images cannot go in an index (convert them first)`);
    added.push({ name: img.name, entries: entries.map(withoutRefName) });
  }
  const format = opts.format ?? 'oci';
  if (format === 'docker' && added.some((a) => a.entries.some((e) => e.mediaType !== MediaType.DockerManifest))) {
    throw new OciToolError('UNSUPPORTED', 'a Docker manifest list can only hold Docker schema 2 manifests (build with --format docker)');
  }
  let written: Descriptor | undefined;
  await dest.updateIndex(async (layoutIndex) => {
    let entries: Descriptor[] = [];
    let annotations: Record<string, string> = {};
    if (opts.add) {
      const current = layoutIndex.manifests.find((d) => d.annotations?.[Annotation.RefName] === opts.tag && isManifestType(d.mediaType));
      if (current === undefined) throw new OciToolError('NOT_FOUND', `${dest.name}:${opts.tag}: no such tag`);
      if (!isIndexType(current.mediaType)) throw new OciToolError('UNSUPPORTED', `${dest.name}:${opts.tag} is a ${current.mediaType}, not an index`);
      const node = await fetchManifest(dest, current);
      if (node.parsed.kind !== 'index') throw new OciToolError('UNSUPPORTED', `${dest.name}:${opts.tag} is not an index`);
      entries = [...node.parsed.index.manifests];
      annotations = { ...(node.parsed.index.annotations ?? {}) };
      if (format === 'docker' && entries.some((e) => e.mediaType !== MediaType.DockerManifest)) {
        throw new OciToolError('UNSUPPORTED', 'a Docker manifest list can only hold Docker schema 2 manifests (build with --format docker)');
      }
    }
    for (const { name, entries: more } of added) {
      for (const clean of more) {
        const i = entries.findIndex((e) => platformKey(e) === platformKey(clean));
        if (i >= 0) {
          if (!opts.add && entries[i]!.digest !== clean.digest) throw new OciToolError('USAGE', `${name}: a second image for platform ${platformKey(clean)}`);
          entries[i] = clean;
        } else entries.push(clean);
      }
    }
    Object.assign(annotations, opts.annotations ?? {});
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList,
      manifests: entries,
      ...(format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
    };
    written = await dest.putBytes(JSON.stringify(index), index.mediaType!);
    setTag(layoutIndex, written, opts.tag);
  });
  return written!;
}

const platformKey = (d: Descriptor): string => (d.platform ? formatPlatform(normalizePlatform(d.platform)) + (d.platform['os.version'] ? `:${d.platform['os.version']}` : '') : d.digest);

/** An entry as it goes in the index: without the ref.name annotation its source may carry. */
function withoutRefName(d: Descriptor): Descriptor {
  const { annotations: a, ...rest } = d;
  if (!a || !Object.keys(a).some((k) => k !== Annotation.RefName)) return rest;
  return { ...rest, annotations: Object.fromEntries(Object.entries(a).filter(([k]) => k !== Annotation.RefName)) };
}
