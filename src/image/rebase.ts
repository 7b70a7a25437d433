/**
 * Moving an image onto another base (crane rebase): the image's layers must start with the old base's
 * (same digests, same diff_ids); those are replaced by the new base's, the image's own layers and its
 * config (env, entrypoint, labels…) are kept, and its history loses the old base's entries for the new
 * base's. Only manifests and configs are read: the layers stay where they are (the image's store, the new
 * base's store) and the one graph copy finds, mounts, streams or copies them into the destination.
 */
import { fetchConfig, type ManifestNode } from '../content/graph.js';
import { canAddRoot, isRemoteRepository, underLease, type Fetcher, type ReadOnlyStore, type Store } from '../content/store.js';
import type { CopyEvent } from '../content/copy.js';
import type { Credential } from '../registry/auth/credentials.js';
import { formatReference, parseReference, type ImageReference } from '../reference/transport.js';
import { MediaType, mediaTypeFor } from '../spec/media-types.js';
import { Annotation, type Descriptor, type ImageConfig, type ImageManifest, type Platform } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { platformOf, registryImageName } from './build.js';
import { ImageWriter } from './image-writer.js';
import { resolveImageManifest } from './resolve.js';

export interface RebaseImage {
  store: ReadOnlyStore;
  descriptor: Descriptor;
  /** For messages. */
  name: string;
  /** The image reference for `org.opencontainers.image.base.name` (a registry image only). */
  imageName?: string;
}

export interface RebaseOptions {
  /** Media types of the result (default: the image's own; `oci` into layouts, see rebase()). */
  format?: 'oci' | 'docker';
  /** From indexes, this platform (default: the image's own; this host's when the image is an index). */
  platform?: Platform;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (event: CopyEvent) => void;
}

interface Resolved {
  node: ManifestNode;
  manifest: ImageManifest;
  config: ImageConfig;
}

async function resolved(image: RebaseImage, platform: Platform | undefined): Promise<Resolved> {
  const { manifest } = await resolveImageManifest(image.store, image.descriptor, { ...(platform ? { platform } : {}), what: image.name });
  if (manifest.parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${image.name}: a ${manifest.parsed.mediaType} cannot be rebased (convert it first)`);
  const config = await fetchConfig(image.store, manifest.parsed.manifest.config);
  if (config.rootfs.diff_ids.length !== manifest.parsed.manifest.layers.length) {
    throw new OciToolError('INVALID_JSON', `${image.name}: config lists ${config.rootfs.diff_ids.length} diff_ids for ${manifest.parsed.manifest.layers.length} layers`);
  }
  return { node: manifest, manifest: manifest.parsed.manifest, config };
}

/** Rebases `image` from `oldBase` onto `newBase` into `destination` (tagged `tag`); the new manifest. */
export async function rebaseImage(image: RebaseImage, oldBase: RebaseImage, newBase: RebaseImage, destination: Store, tag: string | undefined, opts: RebaseOptions = {}): Promise<Descriptor> {
  const img = await resolved(image, opts.platform);
  const platform = opts.platform ?? platformOf(img.config);
  const [old, next] = await Promise.all([resolved(oldBase, platform), resolved(newBase, platform)]);
  const n = old.manifest.layers.length;
  for (let i = 0; i < n; i++) {
    const mine = img.manifest.layers[i];
    if (!mine || mine.digest !== old.manifest.layers[i]!.digest || img.config.rootfs.diff_ids[i] !== old.config.rootfs.diff_ids[i]) {
      throw new OciToolError('UNSUPPORTED', `rebase: ${image.name} is not built on ${oldBase.name}: its layer ${i + 1} is ${mine?.digest ?? 'missing'}, the old base's is ${old.manifest.layers[i]!.digest}`);
    }
  }
  const format = opts.format ?? (img.node.descriptor.mediaType === MediaType.DockerManifest ? 'docker' : 'oci');
  const ownLayers = (layers: Descriptor[]): Descriptor[] => layers.map((l) => ({ ...l, mediaType: mediaTypeFor(l.mediaType, format) }));
  const own = ownLayers(img.manifest.layers.slice(n));
  const newLayers = next.manifest.layers.map((l) => {
    const { annotations, ...rest } = l;
    return { ...rest, mediaType: mediaTypeFor(l.mediaType, format), ...(format === 'oci' && annotations ? { annotations } : {}) };
  });
  // History: the new base's entries, then the image's own (those after the old base's entries).
  const oldHistory = old.config.history?.length ?? 0;
  const history = [...(next.config.history ?? []), ...(img.config.history ?? []).slice(oldHistory)];
  const config: ImageConfig = {
    ...img.config,
    rootfs: { type: 'layers', diff_ids: [...next.config.rootfs.diff_ids, ...img.config.rootfs.diff_ids.slice(n)] },
    ...(history.length > 0 ? { history } : {}),
  };
  // The blobs live in two stores: the new base's layers in its own, everything else in the image's.
  const fromNewBase = new Set(next.manifest.layers.map((l) => l.digest));
  const source: Fetcher & { name: string } = {
    name: image.name,
    fetch: (desc, o) => (fromNewBase.has(desc.digest) ? newBase.store.fetch(desc, o) : image.store.fetch(desc, o)),
  };
  return underLease(destination, async () => {
    const writer = new ImageWriter(destination, source);
    try {
      const configDesc = writer.document(format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, Buffer.from(JSON.stringify(config)));
      const annotations: Record<string, string> = { ...(img.manifest.annotations ?? {}) };
      if (format === 'oci') {
        annotations[Annotation.BaseDigest] = next.node.descriptor.digest;
        if (newBase.imageName) annotations[Annotation.BaseName] = newBase.imageName;
        else delete annotations[Annotation.BaseName];
      }
      const { annotations: _a, ...withoutAnnotations } = img.manifest;
      const manifest: ImageManifest = {
        ...withoutAnnotations,
        mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
        config: { ...img.manifest.config, mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size },
        layers: [...newLayers, ...own],
        ...(format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
      };
      const desc = writer.document(manifest.mediaType!, Buffer.from(JSON.stringify(manifest)));
      // Both stores' repositories are places to mount from when they share the destination's registry.
      if (isRemoteRepository(destination)) {
        for (const s of [newBase.store, image.store]) if (isRemoteRepository(s) && s.host === destination.host && s.repository !== destination.repository) destination.addMountSource(s.repository);
      }
      await writer.write(desc, {
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      const described: Descriptor = { ...desc, platform };
      if (tag !== undefined) await destination.tag(described, tag);
      else if (canAddRoot(destination)) await destination.addRoot(described);
      return desc;
    } finally {
      await writer.close();
    }
  });
}

export interface RebaseToOptions extends RebaseOptions {
  /** Credentials for the registries read (the image and both bases) and the destination's. */
  srcCredential?: Credential;
  dstCredential?: Credential;
  insecure?: boolean;
}

/**
 * rebaseImage between references.
 *
 *   await rebase('docker://reg/app:1', 'docker://reg/node:20.1', 'docker://reg/node:20.2', 'docker://reg/app:1-rebased');
 */
export async function rebase(ref: string | ImageReference, oldBase: string | ImageReference, newBase: string | ImageReference, to: string | ImageReference, opts: RebaseToOptions = {}): Promise<Descriptor> {
  const { openStore, writeTo } = await import('../transport/open.js');
  const { destinationTag } = await import('../transport/copy.js');
  const asRef = (r: string | ImageReference): ImageReference => (typeof r === 'string' ? parseReference(r) : r);
  const { srcCredential, dstCredential, insecure, ...rest } = opts;
  const read = { ...(insecure ? { insecure } : {}), ...(srcCredential ? { credential: srcCredential } : {}) };
  const opened: { close?: () => Promise<void> }[] = [];
  try {
    const image = async (r: string | ImageReference): Promise<RebaseImage> => {
      const reference = asRef(r);
      const o = await openStore(reference, read);
      opened.push(o);
      const imageName = registryImageName(reference);
      return { store: o.store, descriptor: await o.store.resolve(o.reference ?? ''), name: formatReference(reference), ...(imageName ? { imageName } : {}) };
    };
    const [img, old, next] = [await image(ref), await image(oldBase), await image(newBase)];
    const dstRef = asRef(to);
    const tag = destinationTag(dstRef);
    // Into a layout or an oci-archive the result is OCI (as copy makes it; readers refuse Docker types there).
    const format = rest.format ?? (dstRef.transport === 'oci' || dstRef.transport === 'oci-archive' ? 'oci' : undefined);
    return await writeTo(dstRef, { ...(insecure ? { insecure } : {}), ...(dstCredential ? { credential: dstCredential } : {}) }, (dest) => rebaseImage(img, old, next, dest.store, tag, { ...rest, ...(format ? { format } : {}) }));
  } finally {
    for (const o of opened) await o.close?.();
  }
}
