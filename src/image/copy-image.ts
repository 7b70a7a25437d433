import { copyGraph, type CopyGraphOptions } from '../content/copy.js';
import type { Store } from '../content/store.js';
import type { Descriptor } from '../spec/types.js';

export interface CopyImageOptions extends CopyGraphOptions {
  /** Tag to give the image at the destination (none: stored by digest only). */
  tag?: string;
}

/** Copies an image (manifest or index, with everything below it) between any two stores and tags it. */
export async function copyImage(src: Store, srcRef: string, dst: Store, opts: CopyImageOptions = {}): Promise<Descriptor> {
  const root = await src.resolve(srcRef);
  await copyGraph(src, dst, root, opts);
  if (opts.tag !== undefined) await dst.tag(root, opts.tag);
  return root;
}
