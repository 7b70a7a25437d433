import { basename, join, posix } from 'node:path';
import fg from 'fast-glob';
import type { LayerSpec } from '../image/build.js';
import { IgnoreMatcher } from '../layer/ignore.js';
import { exists } from '../layer/sources.js';
import { OciToolError } from '../util/errors.js';
import { installedPackages, readLockfile, type LockedPackage, type Lockfile } from './lockfile.js';
import { nativeCheck } from './native.js';
import { packageMain, type AppManifest } from './package-json.js';

/** Every ancestor directory of each path (not the paths themselves). */
function ancestors(paths: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const p of paths) for (let d = posix.dirname(p); d !== '.' && !out.has(d); d = posix.dirname(d)) out.add(d);
  return out;
}

/**
 * Which paths of DIR the dependency layer keeps: each production package's folder with all it holds,
 * except its own node_modules, where only the production packages nested in it go (and the folders
 * that lead to them: node_modules, @scope). Nothing else of node_modules (dev packages, .bin,
 * .package-lock.json, extraneous folders).
 */
export function dependencyKeep(packages: LockedPackage[]): (path: string) => boolean {
  const roots = new Set(packages.map((p) => p.path));
  const leading = ancestors(roots);
  return (path) => {
    if (roots.has(path) || leading.has(path)) return true;
    // The innermost package holding the path; inside its node_modules only what leads to a package.
    for (let d = posix.dirname(path); d !== '.'; d = posix.dirname(d)) {
      if (roots.has(d)) return !path.slice(d.length + 1).startsWith('node_modules');
    }
    return false;
  };
}

/** Paths npm never packs, whatever `files` says. */
const NEVER_PACKED = ['.git', 'node_modules', '.npmrc', 'npm-debug.log', '.DS_Store', '._*', '.*.swp', 'CVS', '.svn', '.hg', '.lock-wscript', 'config.gypi', '*.orig'];

/**
 * The app's paths that package.json's `files` selects, as npm packs them: each entry a glob (a
 * directory brings what it holds), `!` entries left out; package.json, the lockfile, README*,
 * LICENSE* / LICENCE* and `main` always in; .git, node_modules and npm's other never-packed names out.
 */
export async function selectedFiles(dir: string, manifest: AppManifest, lockfile: string): Promise<Set<string>> {
  const files = manifest.pkg.files;
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string')) throw new OciToolError('INVALID_JSON', `${manifest.file}: "files" must be a list of strings`);
  const patterns: string[] = [];
  const negated: string[] = [];
  for (const raw of files as string[]) {
    const neg = raw.startsWith('!');
    const p = posix.normalize((neg ? raw.slice(1) : raw).replace(/\\/g, '/')).replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
    if (p === '..' || p.startsWith('../')) throw new OciToolError('INVALID_JSON', `${manifest.file}: "files" entry ${JSON.stringify(raw)} climbs out of the app`);
    if (p === '' || p === '.') continue;
    (neg ? negated : patterns).push(p, `${p}/**`);
  }
  const always = ['package.json', basename(lockfile), 'README*', 'LICENSE*', 'LICENCE*', 'readme*', 'license*', 'licence*', posix.normalize(packageMain(manifest.pkg)).replace(/^\.\//, '')];
  const ignore = [...negated, ...NEVER_PACKED.flatMap((n) => [`**/${n}`, `**/${n}/**`])];
  const found = await fg([...patterns, ...always.filter((a) => !a.startsWith('../'))], { cwd: dir, dot: true, onlyFiles: false, followSymbolicLinks: false, ignore, caseSensitiveMatch: true });
  return new Set(found.map((f) => f.replace(/\/+$/, '')));
}

/**
 * The two layers of `build --app DIR`: the production dependencies (as installed, at
 * WORKDIR/node_modules), then the app (package.json's `files`, or everything but node_modules, .git
 * and what DIR/.dockerignore excludes), both at `workdir`. Checks the lockfile and that every
 * production package is installed before any layer is made; the dependency layer refuses platforms
 * other than the host's when a package has native parts, unless `allowNative` (see native.ts).
 */
export async function appLayers(dir: string, manifest: AppManifest, workdir: string, opts: { allowNative?: boolean } = {}): Promise<{ layers: LayerSpec[]; lockfile: string; lock: Lockfile; packages: LockedPackage[] }> {
  const lock = await readLockfile(dir);
  const packages = await installedPackages(dir, lock);
  const deps: LayerSpec = {
    kind: 'select',
    src: dir,
    dest: workdir,
    keep: dependencyKeep(packages),
    label: 'production dependencies',
    cache: lock.hash,
    fixedDirTimes: true,
    ...(opts.allowNative ? {} : { check: nativeCheck(dir, packages) }),
  };
  let app: LayerSpec;
  if (manifest.pkg.files !== undefined) {
    const kept = await selectedFiles(dir, manifest, lock.file);
    const leading = ancestors(kept); // a directory's contents are in `kept` too (its `/**` pattern)
    app = { kind: 'select', src: dir, dest: workdir, keep: (p) => kept.has(p) || leading.has(p), label: 'app files' };
  } else {
    const ignoreFile = join(dir, '.dockerignore');
    const rules = ['node_modules', '.git'];
    const ignore = (await exists(ignoreFile)) ? await IgnoreMatcher.fromFile(ignoreFile, rules) : new IgnoreMatcher(rules);
    app = { kind: 'select', src: dir, dest: workdir, keep: (p) => !ignore.excludes(p), reinclude: ignore.hasNegations, label: 'app files' };
  }
  return { layers: [deps, app], lockfile: lock.file, lock, packages };
}
