import { copyGraph, type CopyGraphOptions } from '../content/copy.js';
import { convertGraph, needsConversion, type ConvertOptions } from '../convert/convert.js';
import { underLease, type Store } from '../content/store.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { isIndexType } from '../spec/media-types.js';
import { resolveImageManifest } from './resolve.js';

export interface CopyImageOptions extends CopyGraphOptions, Pick<ConvertOptions, 'format' | 'compression' | 'level' | 'ignoreSignatures' | 'warn'> {
  /** The destination is a registry (which can hold schema 1 as it is; other stores get it converted). */
  destinationIsRegistry?: boolean;
  /** Tag to give the image at the destination (none: stored by digest only). */
  tag?: string;
  /** From an index, copy only the image for this platform (the manifest becomes the root). */
  platform?: Platform;
}

/**
 * Copies an image (manifest or index, with everything below it) between any two stores and tags it.
 * With `platform`, an index is resolved to that platform's image and only that image is copied. With
 * `format` or `compression` (or a schema 1 source going anywhere but a registry) the image is
 * converted on the way (see convertGraph) and the result's root is returned.
 */
export async function copyImage(src: Store, srcRef: string, dst: Store, opts: CopyImageOptions = {}): Promise<Descriptor> {
  return underLease(dst, () => copyAndTag(src, srcRef, dst, opts));
}

async function copyAndTag(src: Store, srcRef: string, dst: Store, opts: CopyImageOptions): Promise<Descriptor> {
  let root = await src.resolve(srcRef);
  if (opts.platform && isIndexType(root.mediaType)) {
    const { manifest } = await resolveImageManifest(src, root, { platform: opts.platform, what: `${src.name}:${srcRef}` });
    root = manifest.descriptor;
  }
  if (opts.format !== undefined || opts.compression !== undefined || needsConversion(root, opts.destinationIsRegistry ?? false)) root = await convertGraph(src, dst, root, opts);
  else await copyGraph(src, dst, root, opts);
  if (opts.tag !== undefined) await dst.tag(root, opts.tag);
  return root;
}
