import type { Descriptor, ImageIndex, Platform } from '../spec/types.js';
import { formatPlatform, hostPlatform, platformMatches } from '../spec/platform.js';
import { OciToolError } from '../util/errors.js';
import type { Fetcher } from '../content/store.js';
import { fetchManifest, type ManifestNode } from '../content/graph.js';

/** Picks the first entry of an index that matches `platform` (the spec says the first match wins). */
export function selectPlatform(index: ImageIndex, platform: Platform, what: string): Descriptor {
  const hit = index.manifests.find((d) => platformMatches(platform, d.platform));
  if (hit) return hit;
  const have = index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ');
  throw new OciToolError('NOT_FOUND', `${what}: no image for platform ${formatPlatform(platform)} (index has: ${have || 'nothing'})`);
}

/**
 * Reads the manifest a descriptor names; an index (possibly nested) is followed to the entry for
 * `platform` (default: this host's). Returns the image manifest node and the index nodes passed.
 */
export async function resolveImageManifest(
  store: Fetcher,
  desc: Descriptor,
  opts: { platform?: Platform; what?: string } = {},
): Promise<{ manifest: ManifestNode; indexes: ManifestNode[] }> {
  const platform = opts.platform ?? hostPlatform();
  const indexes: ManifestNode[] = [];
  let node = await fetchManifest(store, desc);
  for (let depth = 0; node.parsed.kind === 'index'; depth++) {
    if (depth >= 8) throw new OciToolError('UNSUPPORTED', `${opts.what ?? desc.digest}: indexes nested too deep`);
    indexes.push(node);
    node = await fetchManifest(store, selectPlatform(node.parsed.index, platform, opts.what ?? desc.digest));
  }
  return { manifest: node, indexes };
}
