import { copyGraph, type CopyGraphOptions } from '../content/copy.js';
import type { Store } from '../content/store.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { isIndexType } from '../spec/media-types.js';
import { resolveImageManifest } from './resolve.js';

export interface CopyImageOptions extends CopyGraphOptions {
  /** Tag to give the image at the destination (none: stored by digest only). */
  tag?: string;
  /** From an index, copy only the image for this platform (the manifest becomes the root). */
  platform?: Platform;
}

/**
 * Copies an image (manifest or index, with everything below it) between any two stores and tags it.
 * With `platform`, an index is resolved to that platform's image and only that image is copied.
 */
export async function copyImage(src: Store, srcRef: string, dst: Store, opts: CopyImageOptions = {}): Promise<Descriptor> {
  let root = await src.resolve(srcRef);
  if (opts.platform && isIndexType(root.mediaType)) {
    const { manifest } = await resolveImageManifest(src, root, { platform: opts.platform, what: `${src.name}:${srcRef}` });
    root = manifest.descriptor;
  }
  await copyGraph(src, dst, root, opts);
  if (opts.tag !== undefined) await dst.tag(root, opts.tag);
  return root;
}
