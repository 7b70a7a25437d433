import type { CopyEvent } from '../content/copy.js';
import type { Credential } from '../registry/auth/credentials.js';
import { parseReference, type ImageReference } from '../reference/transport.js';
import { familiarName } from '../reference/docker-name.js';
import { hostPlatform } from '../spec/platform.js';
import { copyImage, type CopiedImage } from '../image/copy-image.js';
import { canAddRoot, isRemoteRepository, underLease, type Store } from '../content/store.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import type { Compression } from '../layer/compression.js';
import { openStore, writeTo, type OpenedStore } from './open.js';

export interface CopyOptions {
  /** From an index, copy only this platform's image; default: everything (the whole index). */
  platform?: Platform;
  /** Credentials for a source / destination registry (default: docker config files, helpers). */
  srcCredential?: Credential;
  dstCredential?: Credential;
  /** Allow plain HTTP and unverified TLS to registries. */
  insecure?: boolean;
  /** The same for the source / destination registry alone (default: `insecure`). */
  srcInsecure?: boolean;
  dstInsecure?: boolean;
  /**
   * Convert to this media type family (Docker schema 2 or OCI) on the way. Default: into an OCI layout
   * or oci-archive, OCI (see layoutFormat); elsewhere as the source is, schema 1 becoming OCI.
   */
  format?: 'oci' | 'docker';
  /** Re-encode layers with this compression (diff_ids kept, digests change); default: as they are. */
  compression?: Compression;
  /** Compression level for re-encoded layers. */
  level?: number;
  /** Convert a signed schema 1 image whose signatures do not verify (a warning instead of an error). */
  ignoreSignatures?: boolean;
  warn?: (message: string) => void;
  /** Copy the image of this manifest file, its blobs read from the source (a schema 1 manifest saved apart, say). */
  manifestFile?: string;
  /** Also copy the image's referrers (signatures, SBOMs…), and theirs, attaching them at the destination. */
  referrers?: boolean;
  /**
   * Into an OCI layout or oci-archive, keep Docker schema 2 manifests and lists as they are (bytes and
   * digests) instead of converting them to OCI, which other tools need (see `layoutFormat`).
   */
  preserveDigests?: boolean;
  /** Blob transfers at once (default 4), the largest blobs first. */
  concurrency?: number;
  /** Cancels the copy: requests in flight are aborted, nothing half-written is left visible. */
  signal?: AbortSignal;
  onProgress?: (event: CopyEvent) => void;
}

export interface CopyResult {
  /** The root copied: the manifest or index. */
  descriptor: Descriptor;
  /** The tag given at the destination, if the destination reference named one. */
  tag?: string;
}

/**
 * The media type family a copy writes when none is asked for: into an OCI layout or oci-archive,
 * OCI, since containers/image (skopeo, podman, buildah), umoci and oci-image-tool open only OCI
 * entries there, unless digests are to be kept (`preserveDigests`, or `referrers`, which name the
 * image's digest). A docker-archive has no manifest digest to keep: into a layout it always comes as
 * OCI. Elsewhere (registries, docker-archive) the source's family stays.
 */
export function layoutFormat(srcRef: ImageReference, dstRef: ImageReference, opts: Pick<CopyOptions, 'format' | 'preserveDigests' | 'referrers'>): 'oci' | 'docker' | undefined {
  if (opts.format !== undefined) return opts.format;
  if (dstRef.transport !== 'oci' && dstRef.transport !== 'oci-archive') return undefined;
  if (srcRef.transport === 'docker-archive') return 'oci';
  return opts.preserveDigests || opts.referrers ? undefined : 'oci';
}

/** The tag a destination reference names (a digest reference stores untagged). */
export function destinationTag(ref: ImageReference): string | undefined {
  switch (ref.transport) {
    case 'oci':
      return ref.digest ? undefined : ref.tag;
    case 'docker':
      return ref.ref.digest ? undefined : ref.ref.tag;
    case 'oci-archive':
      return ref.tag;
    case 'docker-archive':
      // RepoTags hold familiar names, as docker save writes them.
      return ref.ref ? `${familiarName(ref.ref)}:${ref.ref.tag ?? 'latest'}` : undefined;
    default:
      return undefined;
  }
}


const asReference = (r: string | ImageReference): ImageReference => (typeof r === 'string' ? parseReference(r) : r);

/**
 * Copies an image between any two places skopeo names (`oci:DIR:TAG`, `docker://HOST/REPO:TAG`, …):
 * blobs deduplicated, verified on the way, mounted instead of uploaded where the destination registry
 * already has them, children before parents, then the tag.
 *
 *   const { descriptor } = await copy('oci:./out:v1', 'docker://registry.example/app:v1', {
 *     signal: AbortSignal.timeout(600_000),
 *     onProgress: (e) => e.type === 'blob-done' && console.log(e.descriptor.digest),
 *   });
 */
export async function copy(src: string | ImageReference, dst: string | ImageReference, opts: CopyOptions = {}): Promise<CopyResult> {
  const srcRef = asReference(src);
  const dstRef = asReference(dst);
  if (opts.referrers && dstRef.transport === 'docker-archive') throw new OciToolError('USAGE', `${typeof dst === 'string' ? dst : dstRef.file}: a docker archive holds one image and no referrers: copy --referrers to oci:, oci-archive: or a registry`);
  if (dstRef.transport === 'oci' && dstRef.digest) throw new OciToolError('USAGE', `${typeof dst === 'string' ? dst : dstRef.dir}: a destination is named by a tag, not a digest`);
  if (opts.preserveDigests && (opts.format !== undefined || opts.compression !== undefined)) throw new OciToolError('USAGE', '--preserve-digests keeps every digest: it cannot go with --format or --compression, which change them');
  const from = await openStore(srcRef, { ...((opts.srcInsecure ?? opts.insecure) ? { insecure: true } : {}), ...(opts.srcCredential ? { credential: opts.srcCredential } : {}) });
  if (opts.manifestFile !== undefined) {
    const { ManifestFileStore } = await import('./manifest-file.js');
    from.store = await ManifestFileStore.open(opts.manifestFile, from.store);
    delete from.reference;
  }
  let descriptor: Descriptor;
  const tag = destinationTag(dstRef);
  // A docker archive holds one image of one platform, with plain tar layers that other places want
  // compressed (as skopeo does both).
  const platform = opts.platform ?? (dstRef.transport === 'docker-archive' ? hostPlatform() : undefined);
  const compression = opts.compression ?? (srcRef.transport === 'docker-archive' && dstRef.transport !== 'docker-archive' ? 'gzip' : undefined);
  const format = layoutFormat(srcRef, dstRef, opts);
  let remote = isRemoteRepository(from.store);
  try {
    descriptor = await writeTo(dstRef, { ...((opts.dstInsecure ?? opts.insecure) ? { insecure: true } : {}), ...(opts.dstCredential ? { credential: opts.dstCredential } : {}) }, (to) => {
      remote ||= isRemoteRepository(to.store);
      // Registry to registry on one host: the source repository is the first place to mount from.
      if (isRemoteRepository(from.store) && isRemoteRepository(to.store) && from.store.host === to.store.host) to.store.addMountSource(from.store.repository);
      // One lease from the first blob stored to the tag (referrers included), against a concurrent gc.
      return underLease(to.store, async () => {
        const copied = await copyImage(from.store, from.reference ?? '', to.store, {
          ...(platform ? { platform } : {}),
          // With referrers, the tag (or untagged entry) comes last: only once they are known to fit the image copied.
          ...(tag !== undefined && !opts.referrers ? { tag } : {}),
          ...(opts.referrers ? { listUntagged: false } : {}),
          ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
          ...(format !== undefined ? { format } : {}),
          ...(compression !== undefined ? { compression } : {}),
          ...(opts.level !== undefined ? { level: opts.level } : {}),
          ...(opts.ignoreSignatures ? { ignoreSignatures: true } : {}),
          ...(opts.warn ? { warn: opts.warn } : {}),
          destinationIsRegistry: isRemoteRepository(to.store),
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
        if (opts.referrers) {
          // Each referrer is stored, then listed; the image is tagged last.
          await copyReferrers(from.store, to, copied, opts);
          if (tag !== undefined) await to.store.tag(copied.root, tag);
          else if (canAddRoot(to.store)) await to.store.addRoot(copied.root);
        }
        return copied.root;
      });
    });
    if (remote) {
      const { blobLocations } = await import('../registry/blob-locations.js');
      await blobLocations.save().catch(() => undefined); // a cache: failing to save loses nothing
    }
  } finally {
    await from.close?.();
  }
  return tag !== undefined ? { descriptor, tag } : { descriptor };
}

/**
 * Copies the referrers of the image copied (and of those, breadth first, each once) from `src` to the
 * opened destination, each attached to its subject there: through the referrers API or the fallback
 * tag of a registry, or listed in a layout's index.json. Referrers name their subject's digest, so
 * none is ever dropped quietly: when a conversion changed that digest the copy is refused (their
 * signatures would no longer match), and those of an index that was not copied (a platform picked
 * from it) are named in a warning.
 */
async function copyReferrers(src: object, to: OpenedStore<Store>, copied: CopiedImage, opts: CopyOptions): Promise<void> {
  const { referrers, attach } = await import('../artifact/artifact.js');
  const { copyGraph } = await import('../content/copy.js');
  const lookup = src as Parameters<typeof referrers>[0];
  const root = copied.root;
  if (copied.source.digest !== root.digest) {
    const found = await referrers(lookup, copied.source);
    if (found.length > 0) {
      throw new OciToolError(
        'UNSUPPORTED',
        `copy --referrers: ${copied.source.digest} has ${found.length} referrer(s) naming its digest, which the conversion changed to ${root.digest}: their signatures would no longer match; copy without --format/--compression, or without --referrers`,
      );
    }
    return;
  }
  if (copied.index) {
    const left = await referrers(lookup, copied.index);
    if (left.length > 0) opts.warn?.(`copy --referrers: ${left.length} referrer(s) of the index ${copied.index.digest} are not copied, since only one platform's image (${root.digest}) was; copy the whole index (--all-platforms) to take them`);
  }
  const seen = new Set<string>([root.digest]);
  const queue: Descriptor[] = [root];
  while (queue.length > 0) {
    const subject = queue.shift()!;
    for (const r of await referrers(src as Parameters<typeof referrers>[0], subject)) {
      if (seen.has(r.digest)) continue;
      seen.add(r.digest);
      const desc: Descriptor = { mediaType: r.mediaType, digest: r.digest, size: r.size };
      await copyGraph(src as Parameters<typeof copyGraph>[0], to.store, desc, {
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      // A layout (or the one behind an oci-archive being written) lists it in index.json.
      if (canAddRoot(to.store)) await to.store.addRoot(desc);
      await attach(to.store, desc, subject);
      queue.push(desc);
    }
  }
}
