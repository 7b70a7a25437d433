import { asContentError, compressionOfMediaType, decompressor } from '../layer/compression.js';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Descriptor } from '../spec/types.js';
import { isImageConfigType, isManifestType, livesElsewhere } from '../spec/media-types.js';
import { digestOfStream } from '../digest/verify.js';
import { OciToolError, isOciToolError } from '../util/errors.js';
import type { Collectable } from './store.js';
import { fetchConfig, walk } from './graph.js';

export interface VerifyProblem {
  /** The blob at fault, when there is one. */
  digest?: string;
  message: string;
}

export interface VerifyResult {
  /** Blobs reached from the roots and checked. */
  checked: number;
  problems: VerifyProblem[];
  /** Stored blobs nothing reachable refers to (allowed by the spec; gc removes them). */
  unreferenced: string[];
}

export interface VerifyOptions {
  /** Also decompress every layer and check it against the config's diff_ids (slower). */
  diffIds?: boolean;
  /** Also read unreferenced blobs and check they match their names (default true). */
  checkUnreferenced?: boolean;
  /** Extra problems found by the store itself (e.g. badly named files in a layout). */
  extraProblems?: VerifyProblem[];
}

/**
 * Checks everything reachable from a store's roots: every blob present with the right size and digest,
 * manifests and configs parse and carry the media type they are referenced with, an image's config has
 * one diff_id per layer and one non-empty history entry per layer (when it has history).
 */
export async function verifyStore(store: Collectable, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [...(opts.extraProblems ?? [])];
  const verifiedLayers = new Set<string>();
  const add = (digest: string | undefined, err: unknown): void => {
    const message = err instanceof Error ? err.message : String(err);
    problems.push(digest === undefined ? { message } : { digest, message });
  };
  const roots = await store.roots();
  const reached = await walk(store, roots, {
    onError: (desc, err) => add(desc.digest, err),
    visit: async ({ descriptor, node, parent }) => {
      if (node) {
        const own = node.parsed.ownMediaType;
        if (own !== undefined && own !== descriptor.mediaType) {
          add(descriptor.digest, `manifest ${descriptor.digest} is referenced as ${descriptor.mediaType} but says it is ${own}`);
        }
        if (node.parsed.kind === 'manifest') await checkImage(store, node.parsed.manifest.config, node.parsed.manifest.layers, descriptor, add, opts, verifiedLayers);
        return;
      }
      if (isManifestType(descriptor.mediaType)) return; // a failed read, reported by onError
      if (verifiedLayers.has(descriptor.digest) || isImageConfigType(descriptor.mediaType)) return; // config read by checkImage
      try {
        await drain(await store.fetch(descriptor));
      } catch (err) {
        if (livesElsewhere(descriptor) && isOciToolError(err, 'NOT_FOUND')) return; // a foreign layer, at its URLs
        add(descriptor.digest, parent ? withParent(err, parent) : err);
      }
    },
  });
  const unreferenced: string[] = [];
  for await (const blob of store.listBlobs()) {
    if (reached.has(blob.digest)) continue;
    unreferenced.push(blob.digest);
    if (opts.checkUnreferenced ?? true) {
      try {
        await drain(await store.fetch({ mediaType: 'application/octet-stream', digest: blob.digest, size: blob.size }));
      } catch (err) {
        add(blob.digest, err);
      }
    }
  }
  return { checked: reached.size, problems, unreferenced };
}

function withParent(err: unknown, parent: Descriptor): unknown {
  if (isOciToolError(err)) return new OciToolError(err.code, `${err.message} (referenced by ${parent.digest})`, { cause: err });
  return err;
}

async function checkImage(
  store: Collectable,
  config: Descriptor,
  layers: Descriptor[],
  manifest: Descriptor,
  add: (digest: string | undefined, err: unknown) => void,
  opts: VerifyOptions,
  verifiedLayers: Set<string>,
): Promise<void> {
  if (!isImageConfigType(config.mediaType)) return; // artifact: config is an opaque blob
  let diffIds: string[];
  try {
    const cfg = await fetchConfig(store, config);
    diffIds = cfg.rootfs.diff_ids;
    if (diffIds.length !== layers.length) {
      add(manifest.digest, `manifest ${manifest.digest} has ${layers.length} layers but its config ${config.digest} lists ${diffIds.length} diff_ids`);
    }
    if (Array.isArray(cfg.history) && cfg.history.length > 0) {
      const nonEmpty = cfg.history.filter((h) => h.empty_layer !== true).length;
      if (nonEmpty !== layers.length) {
        add(config.digest, `config ${config.digest} has ${nonEmpty} non-empty history entries for ${layers.length} layers`);
      }
    }
  } catch (err) {
    add(config.digest, withParent(err, manifest));
    return;
  }
  if (!opts.diffIds) return;
  for (const [i, layer] of layers.entries()) {
    const want = diffIds[i];
    if (want === undefined || verifiedLayers.has(layer.digest)) continue;
    try {
      const got = await diffIdOf(store, layer);
      verifiedLayers.add(layer.digest);
      if (got !== undefined && got !== want) add(layer.digest, `layer ${layer.digest} decompresses to ${got}, but config ${config.digest} says diff_id ${want}`);
    } catch (err) {
      verifiedLayers.add(layer.digest);
      if (livesElsewhere(layer) && isOciToolError(err, 'NOT_FOUND')) continue;
      add(layer.digest, withParent(err, manifest));
    }
  }
}

/**
 * Streams a layer (verified), decompressing by media type, and returns its diffID; undefined if it
 * cannot tell (a type that is not a tar layer, or zstd without the zstd program).
 */
async function diffIdOf(store: Collectable, layer: Descriptor): Promise<string | undefined> {
  const kind = compressionOfMediaType(layer.mediaType);
  const src = await store.fetch(layer);
  let unpack;
  try {
    unpack = kind === undefined ? undefined : decompressor(kind);
  } catch {
    unpack = undefined; // zstd without the program
  }
  if (!unpack) {
    await drain(src);
    return undefined; // digest checked, diffID not
  }
  try {
    return await digestOfStream(src, unpack);
  } catch (err) {
    throw asContentError(err, layer.digest, kind!);
  }
}

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

async function drain(stream: NodeJS.ReadableStream): Promise<void> {
  await pipeline(stream, sink());
}
