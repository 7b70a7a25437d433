/**
 * The native-dependency check of `build --app`: a production package with native parts (lockfile
 * `os`/`cpu` fields that exclude a platform, a compiled `.node` addon or a `binding.gyp` in its
 * folder) was installed for this host, so it cannot go into an image for another platform unless
 * the user says its binaries serve it (--allow-native). Only platforms other than the host's are
 * checked, so a build for the host reads nothing more than it did.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { formatPlatform, hostPlatform, isHostPlatform, nodePlatformOf } from '../spec/platform.js';
import type { Platform } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';
import type { LockedPackage } from './lockfile.js';

/** How deep below a package's folder the search for native files looks, and how many folders it reads in all. */
export const NATIVE_SEARCH_DEPTH = 8;
export const NATIVE_SEARCH_FOLDERS = 20_000;

/** Whether npm's `os` / `cpu` list admits `value` (`!name` excludes one; any plain name must include it). */
function admits(list: string[], value: string): boolean {
  if (list.includes(`!${value}`)) return false;
  const only = list.filter((x) => !x.startsWith('!'));
  return only.length === 0 || only.includes(value);
}

/** The lockfile field that keeps `pkg` off `platform`, described, or undefined. */
function excludedBy(pkg: LockedPackage, platform: Platform): string | undefined {
  const node = nodePlatformOf(platform);
  if (pkg.os && !admits(pkg.os, node.os)) return `its lockfile "os" field ${JSON.stringify(pkg.os)} excludes ${node.os}`;
  if (pkg.cpu && !admits(pkg.cpu, node.cpu)) return `its lockfile "cpu" field ${JSON.stringify(pkg.cpu)} excludes ${node.cpu}`;
  return undefined;
}

/** What the search may still read, and what it left unread: the budget ran out, a package's folders went deeper. */
interface Budget {
  folders: number;
  exhausted: boolean;
  deep?: string;
}

const isNativeFile = (name: string): boolean => name.endsWith('.node') || name === 'binding.gyp';

/**
 * The first native file (relative to the package) in a package's folder, breadth first, its own
 * node_modules left out (the packages there are checked on their own, as the layer holds them);
 * `budget` counts the folders read across all packages.
 */
async function nativeFile(dir: string, pkg: LockedPackage, budget: Budget): Promise<string | undefined> {
  let level = [''];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > NATIVE_SEARCH_DEPTH) {
      budget.deep ??= pkg.path; // folders below were not read
      return undefined;
    }
    const next: string[] = [];
    for (const rel of level) {
      if (budget.folders <= 0) {
        budget.exhausted = true;
        return undefined;
      }
      budget.folders--;
      let entries;
      try {
        entries = await readdir(join(dir, pkg.path, rel), { withFileTypes: true });
      } catch (err) {
        throw new OciToolError('IO', `--app ${dir}: ${join(pkg.path, rel)}: ${errno(err) ?? (err as Error).message}`, { cause: err });
      }
      for (const e of entries) {
        const path = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isFile() && isNativeFile(e.name)) return path;
        if (e.isDirectory() && !(rel === '' && e.name === 'node_modules')) next.push(path);
      }
    }
    level = next;
  }
  return undefined;
}

/**
 * The dependency layer's platform check (LayerSpec `check`): refuses the first platform other than
 * the host's that a package's native parts cannot serve, in one line naming the package and the
 * platform (a usage error: --allow-native, or a build for the host, is the way on).
 */
export function nativeCheck(dir: string, packages: LockedPackage[], limits: { folders?: number } = {}): (platforms: Platform[], warn?: (m: string) => void) => Promise<void> {
  const folders = limits.folders ?? NATIVE_SEARCH_FOLDERS;
  return async (platforms, warn) => {
    const foreign = platforms.filter((p) => !isHostPlatform(p));
    if (foreign.length === 0) return;
    const host = formatPlatform(hostPlatform());
    const budget: Budget = { folders, exhausted: false };
    const files = new Map<string, string | undefined>();
    for (const pkg of packages) {
      for (const platform of foreign) {
        let why = excludedBy(pkg, platform);
        if (why === undefined) {
          if (!files.has(pkg.path)) files.set(pkg.path, await nativeFile(dir, pkg, budget));
          const file = files.get(pkg.path);
          if (file !== undefined) why = `it holds ${file}, built for this host (${host})`;
        }
        if (why !== undefined) {
          throw new OciToolError('USAGE', `--app ${dir}: ${pkg.name}${pkg.version ? `@${pkg.version}` : ''} (${pkg.path}) has native parts that cannot serve ${formatPlatform(platform)}: ${why}; build for ${host} only, or pass --allow-native if its binaries cover ${formatPlatform(platform)}`);
        }
      }
    }
    if (budget.exhausted) warn?.(`--app ${dir}: the search for native dependencies stopped after ${folders} folders; packages past it were not checked`);
    if (budget.deep !== undefined) warn?.(`--app ${dir}: the search for native dependencies looked ${NATIVE_SEARCH_DEPTH} folders deep; below that ${budget.deep} (and any other package as deep) was not checked`);
  };
}
