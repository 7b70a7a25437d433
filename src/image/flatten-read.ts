/**
 * Reading an image's layers for flatten and export: the image manifest and config (an index resolved
 * to one platform), and each layer's tar entries, streamed and decompressed as unpack reads them
 * (gzip, zstd or plain, told by the magic bytes), the blob verified by the store as it is read and
 * the tar against the config's diffID when it ends.
 */
import { PassThrough, pipeline as pipelineCb } from 'node:stream';
import { fetchConfig, type ManifestNode } from '../content/graph.js';
import type { Fetcher } from '../content/store.js';
import { HashingStream } from '../digest/verify.js';
import { asContentError, decompressor, detectCompression, peek } from '../layer/compression.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../spec/types.js';
import { readTar, type TarItem } from '../unpack/tar-reader.js';
import { OciToolError } from '../util/errors.js';
import { resolveImageManifest } from './resolve.js';

export interface SourceImage {
  node: ManifestNode;
  manifest: ImageManifest;
  config: ImageConfig;
}

/** The image manifest and config `root` leads to (an index: the entry for `platform`, default this host's). */
export async function sourceImage(store: Fetcher, root: Descriptor, opts: { platform?: Platform; what: string }): Promise<SourceImage> {
  const { manifest: node } = await resolveImageManifest(store, root, { ...(opts.platform ? { platform: opts.platform } : {}), what: opts.what });
  if (node.parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${opts.what}: ${node.descriptor.digest} is a ${node.parsed.mediaType}, not an image manifest (convert it first)`);
  const manifest = node.parsed.manifest;
  const config = await fetchConfig(store, manifest.config);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new OciToolError('INVALID_MANIFEST', `${opts.what}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in config ${manifest.config.digest}`);
  }
  return { node, manifest, config };
}

/** How a layer is named in messages. */
export const layerName = (index: number, layer: Descriptor): string => `layer ${index + 1} (${layer.digest})`;

/**
 * The entries of layer `index`, one at a time (read or skip each body before asking for the next); at
 * the end the tar is checked against `diffId`. Every failure is one line naming the layer.
 */
export async function* layerItems(store: Fetcher, layer: Descriptor, index: number, diffId: string, signal?: AbortSignal): AsyncGenerator<TarItem> {
  const name = layerName(index, layer);
  const blob = await store.fetch(layer, signal ? { signal } : {});
  const kind = detectCompression(await peek(blob));
  const diff = new HashingStream('sha256');
  let failure: unknown;
  // A read-ahead buffer: decompression keeps going while entries are handled.
  const ahead = new PassThrough({ highWaterMark: 4 << 20 });
  const decoded = pipelineCb(blob, decompressor(kind), diff, ahead, (err) => {
    if (!err) return;
    failure ??= asContentError(err, layer.digest, kind);
  });
  try {
    yield* readTar(decoded as AsyncIterable<Buffer>, name);
    // The end-of-archive blocks and any padding: the diffID covers them too.
    for await (const _ of decoded) void _;
  } catch (err) {
    throw failure ?? err;
  } finally {
    decoded.destroy();
  }
  if (failure) throw failure;
  if (diff.digest !== diffId) throw new OciToolError('DIGEST_MISMATCH', `${name} decompresses to ${diff.digest}, but the config says diff_id ${diffId}`);
}
