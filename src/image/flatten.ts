/**
 * flatten: an image made of one layer holding its source's filesystem (whiteouts applied), the
 * config copied but for rootfs and history; export: that filesystem as one tar. Both stream: the
 * source's layers are read twice (headers, then data; see flatten-tar.ts), and nothing but the map
 * of surviving paths is held.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CopyEvent } from '../content/copy.js';
import { canAddRoot, underLease, type Fetcher, type Store } from '../content/store.js';
import { formatReference, parseReference, type ImageReference } from '../reference/transport.js';
import type { Credential } from '../registry/auth/credentials.js';
import { writeTarLayer, type Compression, type WrittenLayer } from '../layer/write.js';
import { MediaType } from '../spec/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../spec/types.js';
import type { FlattenLimits } from './flatten-plan.js';
import { sourceImage, type SourceImage } from './flatten-read.js';
import { flattenedTar, planLayers, type FlattenSource } from './flatten-tar.js';
import { ImageWriter, withRemakes } from './image-writer.js';
import { platformOf } from './build.js';

export interface FlattenOptions {
  /** Where the image goes (any store); its tag, if given. */
  destination: Store;
  tag?: string;
  /** The image to flatten (a manifest, or an index: see `platform`) and the store it lives in. */
  source: { store: Fetcher & { readonly name?: string }; descriptor: Descriptor; name?: string };
  /** From an index, the platform to flatten (default: this host's). */
  platform?: Platform;
  /** Seconds since the epoch for `created` (default: the source's). */
  created?: number;
  compression?: Compression;
  level?: number;
  format?: 'oci' | 'docker';
  limits?: FlattenLimits;
  concurrency?: number;
  signal?: AbortSignal;
  warn?: (message: string) => void;
  onProgress?: (event: CopyEvent) => void;
}

export interface FlattenResult {
  manifest: Descriptor;
  config: Descriptor;
  layer: WrittenLayer;
  /** The source's image manifest. */
  source: Descriptor;
}

const isoSeconds = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

/** The source's `created` in whole seconds (0 when it has none or it does not parse). */
function createdOf(config: ImageConfig): number {
  const t = config.created ? Date.parse(config.created) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}

function filesystemOf(store: Fetcher, img: SourceImage, signal?: AbortSignal): FlattenSource {
  return { store, layers: img.manifest.layers, diffIds: img.config.rootfs.diff_ids, ...(signal ? { signal } : {}) };
}

/**
 * Flattens the source image into the destination: one new layer (streamed into it as it is
 * compressed), the config with rootfs and history reduced to it, the manifest, the tag. A damaged
 * source layer fails it before anything is tagged.
 */
export async function flattenImage(opts: FlattenOptions): Promise<FlattenResult> {
  return underLease(opts.destination, () => flattenInto(opts));
}

async function flattenInto(opts: FlattenOptions): Promise<FlattenResult> {
  const format = opts.format ?? 'oci';
  const what = opts.source.name ?? opts.source.descriptor.digest;
  const img = await sourceImage(opts.source.store, opts.source.descriptor, { ...(opts.platform ? { platform: opts.platform } : {}), what });
  const fs = filesystemOf(opts.source.store, img, opts.signal);
  const plan = await planLayers(fs, opts.limits);
  const createdSeconds = opts.created ?? createdOf(img.config);
  // The source's own text when kept (none when it has none).
  const created = opts.created !== undefined ? isoSeconds(opts.created) : img.config.created;
  const writer = new ImageWriter(opts.destination);
  try {
    const sink = await writer.sink();
    const layer = await withRemakes(`flattened layer of ${what}`, () =>
      // Each attempt reads the layers again (the plan is only read).
      writeTarLayer(sink, Readable.from(flattenedTar(fs, { ...plan, dirs: new Map(plan.dirs) }, { mtime: createdSeconds }), { objectMode: false, highWaterMark: 1 }), {
        compression: opts.compression ?? 'gzip',
        ...(opts.level !== undefined ? { level: opts.level } : {}),
        format,
        ...(opts.signal ? { signal: opts.signal } : {}),
      }),
      { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.warn ? { warn: opts.warn } : {}) },
    );
    const when = created !== undefined ? { created } : {};
    const config: ImageConfig = {
      ...img.config,
      ...when,
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ ...when, created_by: `ocitool flatten of ${img.node.descriptor.digest}`, comment: 'ocitool flatten' }],
    };
    const configDesc = writer.document(format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, Buffer.from(JSON.stringify(config)));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
      config: configDesc,
      layers: [layer.descriptor],
    };
    const manifestDesc = writer.document(manifest.mediaType!, Buffer.from(JSON.stringify(manifest)));
    await writer.write(manifestDesc, {
      ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    const described: Descriptor = { ...manifestDesc, platform: platformOf(img.config) };
    if (opts.tag !== undefined) await opts.destination.tag(described, opts.tag);
    else if (canAddRoot(opts.destination)) await opts.destination.addRoot(described);
    return { manifest: manifestDesc, config: configDesc, layer, source: img.node.descriptor };
  } finally {
    await writer.close();
  }
}

export interface FlattenToOptions extends Omit<FlattenOptions, 'destination' | 'tag' | 'source'> {
  srcCredential?: Credential;
  dstCredential?: Credential;
  /** Allow plain HTTP and unverified TLS to registries. */
  insecure?: boolean;
}

const asReference = (r: string | ImageReference): ImageReference => (typeof r === 'string' ? parseReference(r) : r);

/**
 * flattenImage between references: `from` is read, `to` (any writable reference: a layout, a
 * registry, an archive) written and tagged, an archive committed only on success.
 *
 *   await flatten('docker://registry.example/app:v1', 'oci:./flat:v1');
 */
export async function flatten(from: string | ImageReference, to: string | ImageReference, opts: FlattenToOptions = {}): Promise<FlattenResult> {
  const { openStore, writeTo } = await import('../transport/open.js');
  const { destinationTag } = await import('../transport/copy.js');
  const srcRef = asReference(from);
  const dstRef = asReference(to);
  const { srcCredential, dstCredential, insecure, ...rest } = opts;
  const src = await openStore(srcRef, { ...(insecure ? { insecure } : {}), ...(srcCredential ? { credential: srcCredential } : {}) });
  try {
    const descriptor = await src.store.resolve(src.reference ?? '');
    const tag = destinationTag(dstRef);
    return await writeTo(dstRef, { ...(insecure ? { insecure } : {}), ...(dstCredential ? { credential: dstCredential } : {}) }, (dest) =>
      flattenImage({ ...rest, destination: dest.store, ...(tag !== undefined ? { tag } : {}), source: { store: src.store, descriptor, name: formatReference(srcRef) } }),
    );
  } finally {
    await src.close?.();
  }
}

export interface ExportOptions {
  platform?: Platform;
  limits?: FlattenLimits;
  credential?: Credential;
  insecure?: boolean;
  signal?: AbortSignal;
}

/**
 * Writes the filesystem of the image `from` names into `out` as one tar (see flatten-tar.ts); `out`
 * is not ended. Returns the image manifest exported.
 */
export async function exportImage(from: string | ImageReference, out: Writable, opts: ExportOptions = {}): Promise<{ manifest: Descriptor }> {
  const { openStore } = await import('../transport/open.js');
  const ref = asReference(from);
  const src = await openStore(ref, { ...(opts.insecure ? { insecure: true } : {}), ...(opts.credential ? { credential: opts.credential } : {}) });
  try {
    const root = await src.store.resolve(src.reference ?? '');
    const img = await sourceImage(src.store, root, { ...(opts.platform ? { platform: opts.platform } : {}), what: formatReference(ref) });
    const fs = filesystemOf(src.store, img, opts.signal);
    const plan = await planLayers(fs, opts.limits);
    await pipeline(Readable.from(flattenedTar(fs, plan, { mtime: createdOf(img.config) }), { objectMode: false, highWaterMark: 1 }), out, { end: false, ...(opts.signal ? { signal: opts.signal } : {}) });
    return { manifest: img.node.descriptor };
  } finally {
    await src.close?.();
  }
}
