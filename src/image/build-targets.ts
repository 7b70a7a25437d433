/**
 * The images a build makes: one per platform asked for, each on its platform's image from the base
 * (read, never its layers), decided before any layer is made so that a base that cannot serve a
 * platform is refused with nothing written.
 */
import { fetchConfig, fetchManifest, type ManifestNode } from '../content/graph.js';
import type { Fetcher } from '../content/store.js';
import { MediaType } from '../spec/media-types.js';
import { formatPlatform } from '../spec/platform.js';
import type { Descriptor, ImageConfig, ImageIndex, Platform } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { resolveImageManifest, selectPlatform } from './resolve.js';

export interface BuildTarget {
  /** What the image's config and its index entry record. */
  platform: Platform;
  /** The base's image for this platform (none on scratch). */
  base?: { node: ManifestNode; config: ImageConfig; layers: Descriptor[] };
}

export interface TargetOptions {
  base?: { store: Fetcher; descriptor: Descriptor; name?: string };
  platform?: Platform;
  platforms?: Platform[];
}

const SCRATCH_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

/** The platforms asked for: `platforms` (a list of one is a single platform), else `platform`, else none. */
export function wantedPlatforms(opts: Pick<TargetOptions, 'platform' | 'platforms'>): Platform[] {
  const list = opts.platforms?.length ? opts.platforms : opts.platform ? [opts.platform] : [];
  const seen = new Set<string>();
  for (const p of list) {
    if (seen.has(formatPlatform(p))) throw new OciToolError('USAGE', `platform ${formatPlatform(p)} is asked for twice`);
    seen.add(formatPlatform(p));
  }
  return list;
}

/**
 * One target per platform asked for. A single platform (or none) behaves as a one-platform build
 * always has: the base's image for it (this host's from an index when none is asked for), the
 * platform recorded as asked, else the base's, else linux/amd64. Several platforms need a base index
 * that holds each one (or no base at all).
 */
export async function resolveTargets(opts: TargetOptions): Promise<BuildTarget[]> {
  const platforms = wantedPlatforms(opts);
  const base = opts.base;
  if (platforms.length <= 1) {
    const asked = platforms[0];
    if (!base) return [{ platform: asked ?? SCRATCH_PLATFORM }];
    const { manifest } = await resolveImageManifest(base.store, base.descriptor, { ...(asked ? { platform: asked } : {}), what: baseName(base) });
    const b = await baseImage(base, manifest);
    return [{ platform: asked ? recorded(asked, b) : platformOf(b.config), base: b }];
  }
  if (!base) return platforms.map((platform) => ({ platform }));
  const root = await fetchManifest(base.store, base.descriptor);
  if (root.parsed.kind !== 'index') {
    const only = root.parsed.kind === 'manifest' ? ` (${formatPlatform(platformOf(await fetchConfig(base.store, root.parsed.manifest.config)))})` : '';
    throw new OciToolError('USAGE', `base ${baseName(base)} is a single-platform image${only}, not an index: it cannot serve ${platforms.map(formatPlatform).join(', ')}; build on a multi-platform base, or for one platform`);
  }
  const index = root.parsed.index;
  const targets: BuildTarget[] = [];
  for (const platform of platforms) {
    const entry = selectPlatform(index, platform, `base ${baseName(base)}`);
    const { manifest } = await resolveImageManifest(base.store, entry, { platform, what: baseName(base) });
    const b = await baseImage(base, manifest);
    targets.push({ platform: recorded(platform, b), base: b });
  }
  return targets;
}

/**
 * The platform an image on `base` records: the one asked for, with the variant and OS version of the
 * base image it matched where the request names none (`linux/arm` on an arm/v6 base is linux/arm/v6;
 * left bare, runtimes read it as v7). From the base's config, else its index entry.
 */
function recorded(asked: Platform, base: NonNullable<BuildTarget['base']>): Platform {
  const entry = base.node.descriptor.platform;
  const variant = asked.variant ?? base.config.variant ?? entry?.variant;
  const osVersion = asked['os.version'] ?? base.config['os.version'] ?? entry?.['os.version'];
  return { ...asked, ...(variant ? { variant } : {}), ...(osVersion ? { 'os.version': osVersion } : {}) };
}

const baseName = (base: NonNullable<TargetOptions['base']>): string => base.name ?? base.descriptor.digest;

async function baseImage(base: NonNullable<TargetOptions['base']>, manifest: ManifestNode): Promise<NonNullable<BuildTarget['base']>> {
  if (manifest.parsed.kind !== 'manifest') {
    throw new OciToolError('UNSUPPORTED', `base ${baseName(base)}: a ${manifest.parsed.mediaType} cannot be a base (convert it first)`);
  }
  const layers = manifest.parsed.manifest.layers;
  const config = await fetchConfig(base.store, manifest.parsed.manifest.config);
  if (config.rootfs.diff_ids.length !== layers.length) {
    throw new OciToolError('INVALID_JSON', `base ${baseName(base)}: config lists ${config.rootfs.diff_ids.length} diff_ids for ${layers.length} layers`);
  }
  return { node: manifest, config, layers };
}

/**
 * The index of a multi-platform build's images (a Docker manifest list with the docker format, which
 * has no annotations). The build's annotations go on it too: what a registry shows of a
 * multi-platform image (org.opencontainers.image.source, .description) is read from the index.
 */
export function buildIndex(images: { manifest: Descriptor; platform: Platform }[], format: 'oci' | 'docker', annotations: Record<string, string> = {}): ImageIndex {
  return {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: images.map((i) => ({ mediaType: i.manifest.mediaType, digest: i.manifest.digest, size: i.manifest.size, platform: i.platform })),
    ...(format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
}

export function platformOf(config: ImageConfig): Platform {
  const p: Platform = { os: config.os, architecture: config.architecture };
  if (config.variant) p.variant = config.variant;
  if (config['os.version']) p['os.version'] = config['os.version'];
  return p;
}
