import type { CopyEvent } from '../content/copy.js';
import { canAddRoot, canPushTagged, holdsSingleImagesOnly, underLease, type Fetcher, type ReadOnlyStore, type Store } from '../content/store.js';
import { ImageWriter, withRemakes } from './image-writer.js';
import { formatReference, parseReference, type ImageReference } from '../reference/transport.js';
import { formatDockerReference } from '../reference/docker-name.js';
import type { Credential } from '../registry/auth/credentials.js';
import { EntryConverter } from '../layer/entries.js';
import { diffAgainst, diffEntries, type DiffStats, type LowerTree } from '../layer/diff.js';
import type { TreeEntry } from '../layer/walk.js';
import { IgnoreMatcher } from '../layer/ignore.js';
import { addEntries, selectEntries } from '../layer/sources.js';
import { writeLayer, type Compression, type WrittenLayer } from '../layer/write.js';
import { treeFingerprint, type CacheTee, type LayerCache } from '../layer/cache.js';
import { MediaType, mediaTypeFor } from '../spec/media-types.js';
import { Annotation, type Descriptor, type HistoryEntry, type ImageManifest, type Platform } from '../spec/types.js';
import { applyConfigChanges, makeImageConfig, type ConfigChanges } from './config.js';
import { buildIndex, resolveTargets, wantedPlatforms, type BuildTarget } from './build-targets.js';
import { formatPlatform } from '../spec/platform.js';
import { OciToolError } from '../util/errors.js';
import type { AppDefaults, SbomResult } from '../app/build-app.js';

export type LayerSpec =
  | { kind: 'add'; src: string; dest: string }
  | { kind: 'diff'; lower: string; upper: string }
  /** A diff against any lower tree (repack's record), upper entries seen through `view`, owners kept as seen. */
  | { kind: 'tree-diff'; lower: LowerTree; upper: string; view: (e: TreeEntry) => TreeEntry; stats: DiffStats; label: string }
  /**
   * The entries of the directory `src` that `keep` keeps (a path relative to `src`; a directory it
   * does not keep is not entered, unless `reinclude`: then it is packed only when something below it
   * is kept), at `dest`; `label` names the layer in history (`COPY …`) and messages. --exclude and
   * --ignore-file apply too.
   */
  | {
      kind: 'select';
      src: string;
      dest: string;
      keep: (path: string, isDir: boolean) => boolean;
      reinclude?: boolean;
      label: string;
      /**
       * Makes the layer cacheable (BuildOptions.layerCache): what `keep` depends on besides the tree
       * (the lockfile's hash), part of the fingerprint together with the walked entries' metadata.
       */
      cache?: string;
      /**
       * Directories are packed with the build's `created` time (else 0) as their mtime, not their
       * own, and their mtimes are no part of the cache fingerprint: a selection's directories change
       * their mtime with entries it leaves out (see NormalizeOptions.dirMtime).
       */
      fixedDirTimes?: boolean;
      /**
       * Refuses (throws) platforms the layer's contents cannot serve (an app's dependencies with native
       * parts), told every platform the build makes before any layer is made.
       */
      check?: (platforms: Platform[], warn?: (message: string) => void) => Promise<void>;
    };

/** The image a build starts from. */
export interface BuildBase {
  store: Fetcher & { readonly name?: string };
  descriptor: Descriptor;
  /** Names the base in messages. */
  name?: string;
  /**
   * The base's image reference (`host/repo:tag`), recorded as `org.opencontainers.image.base.name`
   * on an OCI manifest; only a base in a registry has one (see registryImageName).
   */
  imageName?: string;
}

export interface BuildOptions {
  /**
   * Where the image goes (blobs, and the tag if given): any store, a layout, a registry repository or
   * an archive being written. New layers stream into it as they are compressed when it can take a
   * stream of unknown digest (a layout, a registry); otherwise they are spooled in a private temp
   * layout first.
   */
  destination: Store;
  tag?: string;
  /**
   * The base image (a manifest or an index) and the store it lives in. Default: scratch. Its layers
   * are never read by the build: the copy that writes the image mounts them (a registry on the same
   * host), finds them (the same repository), streams them across (another registry) or fetches them
   * (a layout or archive destination).
   */
  base?: BuildBase;
  /**
   * The base, still being resolved (in place of `base`): the build reads it while it takes the
   * cacheable layers' fingerprints (build() resolves a registry base's tag this way).
   */
  baseLater?: Promise<BuildBase>;
  /** Platform to pick from a base index and to record (default: the base's, else linux/amd64). */
  platform?: Platform;
  /**
   * Several platforms (a list of one is `platform`): one image per platform, each on that platform's
   * image from a base index (or on scratch), sharing the new layers (made once), under one image
   * index (a Docker manifest list with the docker format) that is tagged; `platform` is then unused.
   */
  platforms?: Platform[];
  layers?: LayerSpec[];
  config?: ConfigChanges;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  /** `.dockerignore`-style patterns, and a file of them, applied to every --add source. */
  exclude?: string[];
  ignoreFile?: string;
  /** Owner of every packed entry (default 0:0). */
  chown?: { uid: number; gid: number };
  /** Seconds since the epoch for `created`, history, and as the file mtime clamp (SOURCE_DATE_EPOCH). */
  created?: number;
  compression?: Compression;
  level?: number;
  format?: 'oci' | 'docker';
  /** Where layers whose spec has a `cache` key are looked up and kept (default: none). */
  layerCache?: LayerCache;
  warn?: (message: string) => void;
  /** Told as each layer is written. */
  onLayer?: (layer: WrittenLayer, spec: LayerSpec, stats?: DiffStats) => void;
  /** Requests at once while the image is written to its destination (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Told of each blob of the copy that writes the image (base layers, config, manifest). */
  onProgress?: (event: CopyEvent) => void;
}


export interface BuiltImage {
  platform: Platform;
  manifest: Descriptor;
  config: Descriptor;
}

export interface BuildResult {
  /** What was tagged: the image's manifest, or the index of a multi-platform build. */
  manifest: Descriptor;
  /** The (first) image's config. */
  config: Descriptor;
  /** Each platform's image (one for a single-platform build), in the order the platforms were asked for. */
  images: BuiltImage[];
  /** Only the layers this build wrote (base layers are reused as they are). */
  layers: WrittenLayer[];
  /** The build's time (`created`, else the time it started), in seconds since the epoch, as the config records it. */
  created: number;
}

const isoSeconds = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

/**
 * Builds an image: reads the base's manifest and config (never its layers), streams one new layer per
 * spec into the destination, then writes the image with the one graph copy (base layers mounted,
 * skipped, streamed or fetched; config and manifest) and tags it. Output is byte-reproducible for
 * equal inputs and `created`.
 *
 * A new layer that fails on its way to a registry is built again from its source (the output is
 * reproducible, so the bytes are the same): no spool file is kept for a retry.
 */
export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  return underLease(opts.destination, () => buildInto(opts)); // gc keeps what it stores until it is tagged
}

export interface BuildToOptions extends Omit<BuildOptions, 'destination' | 'tag' | 'base'> {
  /** The base image's reference (`docker://…`, `oci:DIR:TAG`, archives…); default: scratch. */
  from?: string | ImageReference;
  /**
   * A Node.js app to package (`build --app DIR`): its package.json's `"ocitool"` options as defaults
   * under these options (`from`, `platform`, `compression`, `format`, config, annotations; env,
   * labels, expose and volumes add to them), a layer of its production dependencies and one of its
   * files before `layers`, config defaults (WorkingDir /app, Entrypoint node MAIN, NODE_ENV=production,
   * labels from package.json), the dependency layer cache, and an SBOM. A directory, or its
   * appDefaults as read already.
   */
  app?: string | AppDefaults;
  /** With `app`: attach an SPDX 2.3 SBOM of the production packages as a referrer (default 'spdx'). */
  sbom?: 'spdx' | 'none';
  /**
   * With `app`: the dependency layer cache under ocitoolCacheDir() ($OCITOOL_CACHE_DIR): 'use' it
   * (default), 'refresh' it (pack again and store), or 'off'. A `layerCache` given wins.
   */
  appCache?: 'use' | 'refresh' | 'off';
  /**
   * With `app`: package dependencies with native parts (.node files, binding.gyp, lockfile os/cpu)
   * for platforms other than this host's (default: package.json's "ocitool".allowNative, else refused).
   */
  allowNative?: boolean;
  /** Credentials for the base's and the destination's registries (default: docker config files, helpers). */
  srcCredential?: Credential;
  dstCredential?: Credential;
  /** Allow plain HTTP and unverified TLS to registries. */
  insecure?: boolean;
}

/**
 * buildImage between references: opens the base (`from`) and the destination `to` (created for
 * writing; its tag, if it names one, is the image's), builds, and commits an archive destination (or
 * drops it on failure).
 *
 *   await build('docker://registry.example/team/app:v1', {
 *     from: 'docker://registry.example/library/node:20',
 *     layers: [{ kind: 'add', src: './dist', dest: '/app' }],
 *     config: { workdir: '/app', entrypoint: ['node', 'server.js'] },
 *   });
 *
 * With `app`, a Node.js app (installed with `npm ci`) packaged as `build --app` does, its SBOM
 * attached to the image (`sbom` in the result):
 *
 *   const { manifest, sbom } = await build('docker://registry.example/team/app:v1', { app: '.', from: 'docker://registry.example/library/node:20' });
 */
export async function build(to: string | ImageReference, options: BuildToOptions = {}): Promise<BuildToResult> {
  const { openStore, writeTo } = await import('../transport/open.js');
  const { destinationTag } = await import('../transport/copy.js');
  const ref = (r: string | ImageReference): ImageReference => (typeof r === 'string' ? parseReference(r) : r);
  const dstRef = ref(to);
  if (options.sbom === 'spdx' && options.app === undefined) throw new OciToolError('USAGE', 'build: an SBOM (sbom: spdx, --sbom spdx) needs an app (--app DIR) to describe');
  const app = options.app !== undefined ? await (await import('../app/build-app.js')).withApp(options.app, options) : undefined;
  const opts = app?.options ?? options;
  const { from, srcCredential, dstCredential, insecure, app: _app, sbom, appCache: _c, ...rest } = opts;
  const base = from !== undefined ? await openStore(ref(from), { ...(insecure ? { insecure } : {}), ...(srcCredential ? { credential: srcCredential } : {}) }) : undefined;
  // Resolved while the build starts (see BuildOptions.baseLater); a build refused before it awaits
  // the base leaves no rejection unhandled.
  const baseLater = base ? baseOf(base, ref(from!)) : undefined;
  baseLater?.catch(() => undefined);
  try {
    const tag = destinationTag(dstRef);
    return await writeTo(dstRef, { ...(insecure ? { insecure } : {}), ...(dstCredential ? { credential: dstCredential } : {}) }, async (dest): Promise<BuildToResult> => {
      const result = await buildImage({
        ...rest,
        destination: dest.store,
        ...(tag !== undefined ? { tag } : {}),
        ...(baseLater ? { baseLater } : {}),
      });
      if (!app || sbom === 'none') return result;
      // The SBOM is about the root the build tags (an image, or the index of a multi-platform build).
      const { attachAppSbom } = await import('../app/build-app.js');
      const attached = await attachAppSbom(app.app, dest, dstRef, result, { ...rest, created: result.created });
      return attached ? { ...result, sbom: attached } : result;
    });
  } finally {
    await base?.close?.();
  }
}

/** What build() gives: the build's result, and the SBOM it attached (with `app`). */
export interface BuildToResult extends BuildResult {
  sbom?: SbomResult;
}

/** A base as buildImage takes it, opened from `ref`. */
async function baseOf(opened: { store: ReadOnlyStore; reference?: string }, ref: ImageReference): Promise<BuildBase> {
  const imageName = registryImageName(ref);
  // Read, not only resolved: the build reads the manifest next (a registry answers both in one GET).
  return { store: opened.store, descriptor: await opened.store.resolve(opened.reference ?? '', { read: true }), name: formatReference(ref), ...(imageName ? { imageName } : {}) };
}

/**
 * The image reference the spec's `org.opencontainers.image.base.name` holds: `host/repo:tag` (or
 * `@digest`) for a base in a registry, without the transport; undefined for bases with no registry
 * name (layouts, archives).
 */
export function registryImageName(ref: ImageReference): string | undefined {
  return ref.transport === 'docker' ? formatDockerReference(ref.ref) : undefined;
}

async function buildInto(opts: BuildOptions): Promise<BuildResult> {
  // A build refused before it awaits the base (below) leaves the base's rejection handled, whoever made it.
  opts.baseLater?.catch(() => undefined);
  const format = opts.format ?? 'oci';
  const dest = opts.destination;
  // Every platform's base image is read, and every layer's platform check made, before any layer.
  const wanted = wantedPlatforms(opts);
  if (wanted.length > 1 && holdsSingleImagesOnly(dest)) {
    throw new OciToolError('USAGE', `${dest.name} cannot hold an image index (${wanted.map(formatPlatform).join(', ')}): write several platforms to a layout, a registry or an oci-archive, or build one platform`);
  }
  // Platforms asked for are checked before the base is read (a refusal needs nothing of it); the
  // base's own platform, when none is asked, once it is known.
  const checks = (opts.layers ?? []).flatMap((spec) => (spec.kind === 'select' && spec.check ? [spec.check] : []));
  for (const check of wanted.length > 0 ? checks : []) await check(wanted, opts.warn);
  const ignore = await buildIgnore(opts);
  // The base is read (its manifests and configs, over the network perhaps) while the cacheable
  // layers' fingerprints are taken: metadata only, no layer is made before the base is known good.
  // A base that fails stops the walks at their next turn of the event loop.
  const reading = new AbortController();
  const hasBase = opts.base !== undefined || opts.baseLater !== undefined;
  const baseRead = opts.baseLater ? opts.baseLater.then((base) => ({ ...opts, base })) : Promise.resolve(opts);
  const targetsRead = baseRead.then((o) => resolveTargets(o));
  targetsRead.catch(() => reading.abort());
  const fingerprints = new Map<LayerSpec, { fp: string; walked: TreeEntry[] | undefined }>();
  const stop = opts.signal ? AbortSignal.any([opts.signal, reading.signal]) : reading.signal;
  // The walks, kept for the first attempt to pack each on a miss: WALK_KEEP_MAX entries for all of
  // them together (memory stays flat however many layers are cached); a walk past it is dropped.
  let keep = WALK_KEEP_MAX;
  for (const spec of opts.layerCache ? (opts.layers ?? []) : []) {
    if (spec.kind !== 'select' || spec.cache === undefined || stop.aborted) continue;
    let walked: TreeEntry[] | undefined = keep > 0 ? [] : undefined;
    const fp = await selectFingerprint(spec, ignore, opts, !hasBase, format, stop, (e) => {
      if (walked && walked.push(e) > keep) walked = undefined;
    });
    if (walked) keep -= walked.length;
    if (fp !== undefined) fingerprints.set(spec, { fp, walked });
  }
  const targets = await targetsRead;
  opts = await baseRead;
  for (const check of wanted.length > 0 ? [] : checks) await check(targets.map((t) => t.platform), opts.warn);
  const createdSeconds = opts.created ?? Math.floor(Date.now() / 1000);
  const created = isoSeconds(createdSeconds);

  // New layers stream into the destination, or a spool; base layers stay in the base's store.
  const writer = new ImageWriter(dest, opts.base?.store);
  try {
    // Made once, shared by every platform's image.
    const written: WrittenLayer[] = [];
    const layerHistory: HistoryEntry[] = [];
    for (const spec of opts.layers ?? []) {
      const convOpts = {
        uid: opts.chown?.uid ?? 0,
        gid: opts.chown?.gid ?? 0,
        ...(spec.kind === 'tree-diff' ? { keepOwners: true } : {}),
        ...(spec.kind === 'select' && spec.fixedDirTimes ? { dirMtime: opts.created ?? 0 } : {}),
        ...(opts.created !== undefined ? { mtimeClamp: opts.created } : {}),
        ...(opts.warn ? { warn: opts.warn } : {}),
      };
      const sink = await writer.sink();
      let stats: DiffStats | undefined;
      const what = `layer from ${spec.kind === 'add' ? `--add ${spec.src}` : spec.kind === 'diff' ? `--diff ${spec.upper}` : spec.kind === 'select' ? `${spec.label} ${spec.src}` : spec.label}`;
      // `copy` gives each attempt its own stage that keeps the compressed bytes (the layer cache's).
      const takeWalked = (): { walked: TreeEntry[] } | undefined => {
        const w = walked;
        walked = undefined; // a later attempt walks again
        return w ? { walked: w } : undefined;
      };
      const make = (copy?: () => CacheTee): Promise<WrittenLayer> => withRemakes(what, () => {
        // Each attempt walks the source again: entries and counts start over.
        const through = copy?.();
        const conv = new EntryConverter(convOpts);
        stats = spec.kind === 'diff' ? { added: 0, changed: 0, deleted: 0, opaque: 0, unchanged: 0 } : spec.kind === 'tree-diff' ? { ...spec.stats } : undefined;
        const entries =
          spec.kind === 'add'
            ? addEntries(spec.src, spec.dest, conv, ignore, { parents: !opts.base })
            : spec.kind === 'select'
              ? selectEntries(spec.src, spec.dest, conv, spec.label, { ...selectWalk(spec, ignore, !opts.base), ...(takeWalked() ?? {}) })
              : spec.kind === 'diff'
              ? diffEntries(spec.lower, spec.upper, conv, stats)
              : diffAgainst(spec.lower, spec.upper, conv, stats, { upper: spec.view });
        return writeLayer(sink, entries, { compression: opts.compression ?? 'gzip', ...(opts.level !== undefined ? { level: opts.level } : {}), format, ...(opts.signal ? { signal: opts.signal } : {}), ...(through ? { through } : {}) });
      }, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.warn ? { warn: opts.warn } : {}) });
      const cache = spec.kind === 'select' && spec.cache !== undefined ? opts.layerCache : undefined;
      const taken = fingerprints.get(spec);
      fingerprints.delete(spec); // its kept walk goes with the layer's packing
      const fp = taken?.fp;
      let walked = taken?.walked;
      let layer: WrittenLayer | undefined;
      if (cache && fp !== undefined) {
        const hit = await cache.lookup(fp);
        layer = hit && (await cache.reuse(fp, hit, dest, writer));
        if (!layer) {
          let tee: CacheTee | undefined;
          try {
            layer = await make(() => {
              tee?.discard(); // a failed attempt's copy
              return (tee = cache.tee());
            });
            await cache.store(fp, layer, tee!);
          } finally {
            tee?.discard();
          }
        }
      } else layer = await make();
      if (spec.kind === 'tree-diff' && stats) Object.assign(spec.stats, stats);
      written.push(layer);
      const hex = layer.diffId.slice('sha256:'.length);
      layerHistory.push({ created, created_by: historyLine(spec, hex), comment: spec.kind === 'tree-diff' ? `ocitool ${spec.label.toLowerCase()}` : 'ocitool build' });
      opts.onLayer?.(layer, spec, stats);
    }

    if (format === 'docker' && Object.keys(opts.annotations ?? {}).length > 0) {
      opts.warn?.('Docker manifests have no annotations; --annotation is dropped with --format docker');
    }
    const images = targets.map((t) => imageOf(t, { written, layerHistory, created, format, writer, opts }));
    const root: Descriptor =
      images.length === 1
        ? images[0]!.manifest
        : writer.document(format === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList, Buffer.from(JSON.stringify(buildIndex(images, format, opts.annotations))));
    // A registry stores and tags the root in one request (a layout's tag records the platform below).
    const tagRoot = opts.tag !== undefined && canPushTagged(dest) ? opts.tag : undefined;
    await writer.write(root, {
      ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(tagRoot !== undefined ? { tagRoot } : {}),
    });
    // A single image is tagged with its platform; a multi-platform build tags its index only.
    const described: Descriptor = images.length === 1 ? { ...root, platform: images[0]!.platform } : root;
    if (opts.tag !== undefined) {
      if (tagRoot === undefined) await dest.tag(described, opts.tag);
    } else if (canAddRoot(dest)) await dest.addRoot(described);
    return { manifest: root, config: images[0]!.config, layers: written, images, created: createdSeconds };
  } finally {
    await writer.close();
  }
}

/** The build's --exclude patterns and --ignore-file, applied to every layer it makes from a directory. */
export function buildIgnore(opts: Pick<BuildOptions, 'exclude' | 'ignoreFile'>): Promise<IgnoreMatcher> {
  return opts.ignoreFile ? IgnoreMatcher.fromFile(opts.ignoreFile, opts.exclude ?? []) : Promise.resolve(new IgnoreMatcher(opts.exclude ?? []));
}

/** One platform's config and manifest: its base's layers and history, then the shared new layers. */
function imageOf(
  target: BuildTarget,
  ctx: { written: WrittenLayer[]; layerHistory: HistoryEntry[]; created: string; format: 'oci' | 'docker'; writer: ImageWriter; opts: BuildOptions },
): BuiltImage {
  const { written, created, format, writer, opts } = ctx;
  const baseConfig = target.base?.config;
  const baseLayers = target.base?.layers ?? [];
  // A base without history gets one entry per layer, so that history still matches the layers.
  const history: HistoryEntry[] = baseConfig?.history?.length
    ? [...baseConfig.history]
    : baseLayers.map(() => ({ ...(baseConfig?.created ? { created: baseConfig.created } : {}), comment: 'base layer (the base image records no history)' }));
  history.push(...ctx.layerHistory);
  const { config: runtime, steps } = applyConfigChanges(baseConfig?.config, opts.config ?? {});
  for (const step of steps) history.push({ created, created_by: step, comment: 'ocitool build', empty_layer: true });

  const diffIds = [...(baseConfig?.rootfs.diff_ids ?? []), ...written.map((l) => l.diffId)];
  const imageConfig = makeImageConfig({ ...(baseConfig ? { base: baseConfig } : {}), platform: target.platform, created, config: runtime, diffIds, history });
  const config = writer.document(format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, Buffer.from(JSON.stringify(imageConfig)));

  const layers: Descriptor[] = [
    ...baseLayers.map((l) => {
      const { annotations: _a, ...rest } = l;
      return { ...rest, mediaType: mediaTypeFor(l.mediaType, format), ...(format === 'oci' && l.annotations ? { annotations: l.annotations } : {}) };
    }),
    ...written.map((l) => l.descriptor),
  ];
  const annotations: Record<string, string> = { ...(opts.annotations ?? {}) };
  if (target.base && opts.base && format === 'oci') {
    annotations[Annotation.BaseDigest] ??= target.base.node.descriptor.digest;
    if (opts.base.imageName) annotations[Annotation.BaseName] ??= opts.base.imageName;
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config,
    layers,
    ...(format === 'oci' && Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  return { platform: target.platform, manifest: writer.document(manifest.mediaType!, Buffer.from(JSON.stringify(manifest))), config };
}

function historyLine(spec: LayerSpec, hex: string): string {
  switch (spec.kind) {
    case 'add':
      return `ADD dir:${hex} in ${spec.dest}`;
    case 'diff':
      return `DIFF layer:${hex}`;
    case 'select':
      return `COPY ${spec.label} dir:${hex} in ${spec.dest}`;
    case 'tree-diff':
      return `${spec.label} layer:${hex}`;
  }
}

/**
 * The cache fingerprint of a select layer: its key, where it goes, the options that change its
 * bytes, and the metadata of what its walk takes (undefined when the source cannot be walked: the
 * build then says why).
 */
async function selectFingerprint(spec: Extract<LayerSpec, { kind: 'select' }>, ignore: IgnoreMatcher, opts: BuildOptions, parents: boolean, format: string, signal: AbortSignal, collect?: (e: TreeEntry) => void): Promise<string | undefined> {
  const options = [spec.cache, spec.dest, parents, opts.chown?.uid ?? 0, opts.chown?.gid ?? 0, opts.created ?? null, opts.compression ?? 'gzip', opts.level ?? null, format];
  return treeFingerprint(spec.src, selectWalk(spec, ignore, parents), options, { dirTimes: !spec.fixedDirTimes, signal, ...(collect ? { collect } : {}) }).catch(() => undefined);
}

/** Entries of the fingerprints' walks kept for packing, all layers together; past it a tree is walked again (memory stays flat). */
const WALK_KEEP_MAX = 100_000;

/** A select layer's walk: its own choice, then the build's --exclude / --ignore-file. */
function selectWalk(spec: Extract<LayerSpec, { kind: 'select' }>, ignore: IgnoreMatcher, parents: boolean) {
  const extra = ignore.empty ? undefined : ignore;
  return {
    parents,
    exclude: (p: string, isDir: boolean) => !spec.keep(p, isDir) || (extra?.excludes(p) ?? false),
    reinclude: (spec.reinclude ?? false) || (extra?.hasNegations ?? false),
  };
}

export { platformOf } from './build-targets.js';
