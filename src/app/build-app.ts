/**
 * What `app: DIR` (the CLI's `build --app DIR`) adds to a build, in one place for the library and
 * the CLI: package.json's `"ocitool"` options and the config they imply as defaults under the
 * caller's options, the dependency and app layers first, the dependency layer cache, and the SBOM
 * attached to the image once it is written.
 */
import type { BuildOptions, BuildResult, BuildToOptions } from '../image/build.js';
import type { OpenedStore } from '../transport/open.js';
import type { ImageReference } from '../reference/transport.js';
import { attach, packArtifact } from '../artifact/artifact.js';
import { fetchConfig } from '../content/graph.js';
import { canAddRoot, underLease, type Store } from '../content/store.js';
import { normalizePort, parseKeyValues } from '../image/config.js';
import { LayerCache } from '../layer/cache.js';
import { ocitoolCacheDir } from '../registry/blob-locations.js';
import { formatReference } from '../reference/transport.js';
import { parsePlatforms } from '../spec/platform.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { ocitoolVersion } from '../util/version.js';
import { appLayers } from './layers.js';
import type { LockedPackage, Lockfile } from './lockfile.js';
import { packageLabels, packageMain, readAppManifest, type AppManifest, type AppOptions } from './package-json.js';
import { SPDX_JSON, spdxDocument, withInstalledLicenses } from './sbom.js';

/**
 * An app's package.json `"ocitool"` options (checked when read, before any work) and the defaults
 * they imply. The caller's options win: a scalar replaces the default; env, labels, annotations,
 * expose and volumes add to it (a key the caller gives wins).
 */
export interface AppDefaults {
  dir: string;
  manifest: AppManifest;
  options: AppOptions;
  /** NODE_ENV=production, then the "ocitool" env. */
  env: string[];
  /** Labels package.json describes, then the "ocitool" labels. */
  labels: Record<string, string>;
  entrypoint: string[];
  workdir: string;
}

export async function appDefaults(dir: string): Promise<AppDefaults> {
  const manifest = await readAppManifest(dir);
  const o = manifest.options;
  const where = (key: string): string => `${manifest.file} "ocitool".${key}`;
  parseKeyValues(o.env ?? [], where('env'));
  for (const p of o.expose ?? []) normalizePort(p);
  return {
    dir,
    manifest,
    options: o,
    env: ['NODE_ENV=production', ...(o.env ?? [])],
    labels: { ...packageLabels(manifest.pkg), ...(o.labels ?? {}) },
    entrypoint: o.entrypoint ?? ['node', packageMain(manifest.pkg)],
    workdir: o.workdir ?? '/app',
  };
}

/** An app ready to build: its defaults, lockfile and the production packages installed. */
export interface PreparedApp {
  defaults: AppDefaults;
  lockfile: Lockfile;
  packages: LockedPackage[];
}

/**
 * The build options with the app's merged in (defaults under `opts`, its two layers before
 * `opts.layers`, the layer cache), and the app as the SBOM needs it. Checks everything (package.json,
 * the lockfile, that each production package is installed) before any layer is made.
 */
export async function withApp(app: string | AppDefaults, opts: BuildToOptions): Promise<{ options: BuildToOptions; app: PreparedApp }> {
  const d = typeof app === 'string' ? await appDefaults(app) : app;
  const o = d.options;
  const c = opts.config ?? {};
  const workdir = c.workdir ?? d.workdir;
  if (!workdir.startsWith('/')) throw new OciToolError('USAGE', `--app ${d.dir}: the working directory ${JSON.stringify(workdir)} must be an absolute path (the app goes there)`);
  // package.json's platforms, unless the caller names one or several (checked before the lockfile is read).
  const listed = opts.platform || opts.platforms || o.platform === undefined ? undefined : parsePlatforms(o.platform.join(','), `${d.manifest.file} "ocitool".platform`);
  const layers = await appLayers(d.dir, d.manifest, workdir, { allowNative: opts.allowNative ?? o.allowNative ?? false });
  const cmd = c.cmd ?? o.cmd;
  const user = c.user ?? o.user;
  const from = opts.from ?? o.from;
  const compression = opts.compression ?? o.compression;
  const format = opts.format ?? o.format;
  const cache = opts.appCache ?? 'use';
  const layerCache = opts.layerCache ?? (cache === 'off' ? undefined : new LayerCache(ocitoolCacheDir(), { use: cache === 'use', ...(opts.warn ? { warn: opts.warn } : {}) }));
  const options: BuildToOptions = {
    ...opts,
    ...(from !== undefined ? { from } : {}),
    ...(listed ? { platforms: listed } : {}),
    ...(compression ? { compression } : {}),
    ...(format ? { format } : {}),
    ...(layerCache ? { layerCache } : {}),
    layers: [...layers.layers, ...(opts.layers ?? [])],
    annotations: { ...(o.annotations ?? {}), ...(opts.annotations ?? {}) },
    config: {
      ...c,
      env: [...d.env, ...(c.env ?? [])],
      labels: { ...d.labels, ...(c.labels ?? {}) },
      entrypoint: c.entrypoint ?? d.entrypoint,
      ...(cmd ? { cmd } : {}),
      workdir,
      ...(user !== undefined ? { user } : {}),
      expose: [...(o.expose ?? []), ...(c.expose ?? [])],
      volumes: [...(o.volumes ?? []), ...(c.volumes ?? [])],
    },
  };
  // The SBOM lists what the image holds: a package whose package.json --exclude or --ignore-file
  // leaves out of the dependency layer is not in it.
  const ignore = await (await import('../image/build.js')).buildIgnore(opts);
  const packages = ignore.empty ? layers.packages : layers.packages.filter((p) => !ignore.excludes(`${p.path}/package.json`));
  return { options, app: { defaults: d, lockfile: layers.lock, packages } };
}

/** The SBOM of a build: its manifest, what it is about, and how many packages it lists. */
export interface SbomResult {
  descriptor: Descriptor;
  subject: Descriptor;
  packages: number;
  /** A multi-platform build's: the same document attached to each platform's image as well (in the images' order). */
  images?: Descriptor[];
}

/** The SPDX document of a prepared app (its bytes, and the number of distinct packages). */
export async function appSbom(app: PreparedApp, created: number, warn?: (message: string) => void): Promise<{ bytes: Buffer; packages: number }> {
  const pkg = app.defaults.manifest.pkg;
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const packages = await withInstalledLicenses(app.defaults.dir, app.packages, warn ? { warn } : {});
  const bytes = spdxDocument({
    app: { name: text(pkg.name) ?? 'app', ...(text(pkg.version) ? { version: text(pkg.version)! } : {}), license: pkg.license },
    packages,
    ...(app.lockfile.rootDependencies ? { rootDependencies: app.lockfile.rootDependencies } : {}),
    created,
    toolVersion: ocitoolVersion(),
  });
  const doc = JSON.parse(bytes.toString()) as { packages: unknown[] };
  return { bytes, packages: doc.packages.length - 1 };
}

/**
 * Writes the app's SBOM next to the root `built` (an image, or an index) just written into `dest`
 * and attaches it as a referrer: listed in index.json (a layout, an oci-archive), or the registry's
 * referrers API, else the fallback tag. A multi-platform build's index and each of its images get
 * it (scanners look up the referrers of the image they pull, not of the index). A destination that
 * cannot hold referrers (docker-archive) gets none: one warning. Its time is the build's
 * (`created`, else the one the config records).
 */
export async function attachAppSbom(app: PreparedApp, dest: OpenedStore<Store>, ref: ImageReference, built: Pick<BuildResult, 'manifest' | 'config'> & Partial<Pick<BuildResult, 'images'>>, opts: Pick<BuildOptions, 'created' | 'warn' | 'signal'> = {}): Promise<SbomResult | undefined> {
  const store = dest.store;
  const subject = built.manifest;
  if (ref.transport !== 'docker' && !canAddRoot(store)) {
    opts.warn?.(`${formatReference(ref)}: a ${ref.transport} cannot hold the SBOM (a referrer); the image is written without it (use an OCI layout, an oci-archive or a registry, or --sbom none)`);
    return undefined;
  }
  let created = opts.created;
  if (created === undefined) {
    const t = Date.parse((await fetchConfig(store, built.config).catch(() => undefined))?.created ?? '');
    if (Number.isFinite(t)) created = Math.floor(t / 1000);
  }
  created ??= Math.floor(Date.now() / 1000);
  const sbom = await appSbom(app, created, opts.warn);
  const images = built.images && built.images.length > 1 ? built.images.map((i) => i.manifest) : [];
  const [descriptor, ...perImage] = await underLease(store, async () => {
    const out: Descriptor[] = [];
    for (const about of [subject, ...images]) {
      const d = await packArtifact(store, {
        artifactType: SPDX_JSON,
        files: [{ path: 'sbom.spdx.json', bytes: sbom.bytes, mediaType: SPDX_JSON }],
        created,
        subject: { mediaType: about.mediaType, digest: about.digest, size: about.size },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (canAddRoot(store)) await store.addRoot(d);
      await attach(store, d, about);
      out.push(d);
    }
    return out;
  });
  return { descriptor: descriptor!, subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size }, packages: sbom.packages, ...(perImage.length ? { images: perImage } : {}) };
}
