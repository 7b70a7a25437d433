import { pipeline as pipelineCb, type Readable, type Transform } from 'node:stream';
import { HashingStream } from '../digest/verify.js';
import type { StreamPusher } from '../content/store.js';
import { MediaType } from '../spec/media-types.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { ParallelGzip } from './gzip.js';
import { packLayer, type LayerEntry } from './tar.js';

import { compressor as streamCompressor, type Compression } from './compression.js';
const zstdCompressor = (level: number | undefined): Transform => streamCompressor('zstd', level) as Transform;
export type { Compression };

export interface LayerWriteOptions {
  compression?: Compression;
  /** gzip 0–9 (default 6). */
  level?: number;
  /** Media type family (default oci). */
  format?: 'oci' | 'docker';
  signal?: AbortSignal;
  /** A pass-through stage for the compressed bytes (the layer cache's copy). */
  through?: Transform;
}

export interface WrittenLayer {
  /** The layer as stored: its digest is of the compressed bytes. */
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Length of the uncompressed tar. */
  uncompressedSize: number;
}

export function layerMediaType(compression: Compression, format: 'oci' | 'docker' = 'oci'): string {
  if (format === 'docker') {
    if (compression === 'zstd') throw new OciToolError('UNSUPPORTED', 'zstd layers cannot be written in Docker format');
    return compression === 'gzip' ? MediaType.DockerLayerGzip : MediaType.DockerLayer;
  }
  return compression === 'gzip' ? MediaType.OciLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

function compressor(compression: Compression, level: number | undefined): Transform | undefined {
  switch (compression) {
    case 'none':
      return undefined;
    case 'gzip':
      return new ParallelGzip({ level: level ?? 6 });
    case 'zstd':
      return zstdCompressor(level); // through the zstd program, refused with the reason when it is missing
  }
}

/**
 * Packs entries into a layer and streams it into a store in one pass: tar → sha256 (the diffID) →
 * compressor → the store (a layout's blob writer, a registry upload), which names it by its digest.
 * Nothing is held whole in memory.
 */
export async function writeLayer(sink: StreamPusher, entries: AsyncIterable<LayerEntry>, opts: LayerWriteOptions = {}): Promise<WrittenLayer> {
  return writeTarLayer(sink, packLayer(entries), opts);
}

/** writeLayer for a tar stream made elsewhere (flatten's merged layers, say). */
export async function writeTarLayer(sink: StreamPusher, tar: Readable, opts: LayerWriteOptions = {}): Promise<WrittenLayer> {
  const compression = opts.compression ?? 'gzip';
  const mediaType = layerMediaType(compression, opts.format);
  const diff = new HashingStream('sha256');
  const comp = compressor(compression, opts.level);
  const onError = (): void => undefined; // the error reaches putBlob through the last stream
  const stages: NodeJS.ReadWriteStream[] = [diff, ...(comp ? [comp] : []), ...(opts.through ? [opts.through] : [])];
  const out = pipelineCb([tar, ...stages], onError) as unknown as Readable;
  const stored = await sink.pushStream(out, opts.signal ? { signal: opts.signal } : {});
  return { descriptor: { mediaType, digest: stored.digest, size: stored.size }, diffId: diff.digest, uncompressedSize: diff.size };
}
