import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { digestOf } from '../../src/digest/digest.js';
import type { OciLayout } from '../../src/layout/layout.js';
import { MediaType } from '../../src/spec/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../../src/spec/types.js';

/** An uncompressed tar holding the given files (path → content), built in memory: test images are tiny. */
export async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface TestImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * Writes a small but real image (gzip tar layers, OCI config and manifest) into a layout and tags it.
 * `seed` makes the content unique so that images do not share blobs unless asked to.
 */
export async function writeTestImage(layout: OciLayout, opts: { tag?: string; seed?: string; layers?: number; platform?: { os: string; architecture: string } } = {}): Promise<TestImage> {
  const seed = opts.seed ?? 'x';
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < (opts.layers ?? 2); i++) {
    const tar = await tarOf({ [`file-${i}.txt`]: `layer ${i} of ${seed}\n` });
    diffIds.push(digestOf(tar));
    layers.push(await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip));
  }
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const cfg: ImageConfig = {
    ...platform,
    created: '2020-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '2020-01-01T00:00:00Z', created_by: `layer ${i}` })),
  };
  const config = await layout.putBytes(JSON.stringify(cfg), MediaType.OciConfig);
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  const manifest = await layout.putBytes(JSON.stringify(m), MediaType.OciManifest);
  if (opts.tag !== undefined) await layout.tag(manifest, opts.tag);
  return { manifest, config, layers };
}
