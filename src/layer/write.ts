import { pipeline as pipelineCb, type Readable, type Transform } from 'node:stream';
import { HashingStream } from '../digest/verify.js';
import type { OciLayout } from '../layout/layout.js';
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
 * Packs entries into a layer and stores it in a layout in one streaming pass: tar → sha256 (the
 * diffID) → compressor → the layout's verified blob writer (the digest). Nothing is held whole in memory.
 */
export async function writeLayer(layout: OciLayout, entries: AsyncIterable<LayerEntry>, opts: LayerWriteOptions = {}): Promise<WrittenLayer> {
  const compression = opts.compression ?? 'gzip';
  const mediaType = layerMediaType(compression, opts.format);
  const tar = packLayer(entries);
  const diff = new HashingStream('sha256');
  const comp = compressor(compression, opts.level);
  const onError = (): void => undefined; // the error reaches putBlob through the last stream
  const out: Readable = comp ? pipelineCb(tar, diff, comp, onError) : pipelineCb(tar, diff, onError);
  const stored = await layout.putBlob(out);
  return { descriptor: { mediaType, digest: stored.digest, size: stored.size }, diffId: diff.digest, uncompressedSize: diff.size };
}
