import { copyGraph, type CopyGraphOptions } from '../content/copy.js';
import { convertGraph, needsConversion, type ConvertOptions } from '../convert/convert.js';
import { canAddRoot, canPushTagged, underLease, type ReadOnlyStore, type Store } from '../content/store.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { isIndexType } from '../spec/media-types.js';
import { resolveImageManifest } from './resolve.js';

export interface CopyImageOptions extends CopyGraphOptions, Pick<ConvertOptions, 'format' | 'compression' | 'level' | 'ignoreSignatures' | 'warn'> {
  /** The destination is a registry (which can hold schema 1 as it is; other stores get it converted). */
  destinationIsRegistry?: boolean;
  /** Tag to give the image at the destination (none: stored by digest only, listed untagged in a layout's index.json). */
  tag?: string;
  /** Without a tag, list the image untagged where the destination lists roots (a layout); default true. */
  listUntagged?: boolean;
  /** From an index, copy only the image for this platform (the manifest becomes the root). */
  platform?: Platform;
}

export interface CopiedImage {
  /** The root at the destination (the source's, unless a conversion changed it). */
  root: Descriptor;
  /** The root copied from the source: the one `srcRef` names, or the platform's image in it. */
  source: Descriptor;
  /** The index `srcRef` names, when a platform's image was picked from it. */
  index?: Descriptor;
}

/**
 * Copies an image (manifest or index, with everything below it) between any two stores and tags it.
 * With `platform`, an index is resolved to that platform's image and only that image is copied. With
 * `format` or `compression` (or a schema 1 source going anywhere but a registry) the image is
 * converted on the way (the conversion transform of the one graph copy).
 */
export async function copyImage(src: ReadOnlyStore, srcRef: string, dst: Store, opts: CopyImageOptions = {}): Promise<CopiedImage> {
  return underLease(dst, () => copyAndTag(src, srcRef, dst, opts));
}

async function copyAndTag(src: ReadOnlyStore, srcRef: string, dst: Store, opts: CopyImageOptions): Promise<CopiedImage> {
  const named = await src.resolve(srcRef);
  let source = named;
  if (opts.platform && isIndexType(named.mediaType)) {
    const { manifest } = await resolveImageManifest(src, named, { platform: opts.platform, what: `${src.name}:${srcRef}` });
    source = manifest.descriptor;
  }
  const convert = opts.format !== undefined || opts.compression !== undefined || needsConversion(source, opts.destinationIsRegistry ?? false);
  // A registry stores and tags the root in one request (a layout's tag records the platform below).
  const tagRoot = !convert && opts.tag !== undefined && canPushTagged(dst) ? opts.tag : undefined;
  const copied = convert ? await convertGraph(src, dst, source, opts) : await copyGraph(src, dst, source, { ...opts, ...(tagRoot !== undefined ? { tagRoot } : {}) });
  // A converted root keeps the platform its source was listed with (index.json entries carry it).
  const root = copied.digest !== source.digest && source.platform && !copied.platform ? { ...copied, platform: source.platform } : copied;
  // Untagged, a layout still lists it (as skopeo does): inspect finds it, gc keeps it.
  if (opts.tag !== undefined) {
    if (tagRoot === undefined) await dst.tag(root, opts.tag);
  } else if (opts.listUntagged !== false && canAddRoot(dst)) await dst.addRoot(root);
  return { root, source, ...(source !== named ? { index: named } : {}) };
}
