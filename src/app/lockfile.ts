import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { OciToolError, errno } from '../util/errors.js';
import { exists } from '../layer/sources.js';
import { digestOf } from '../digest/digest.js';

/** What an app's lockfile may weigh, and how many packages it may list. */
export const LOCKFILE_MAX_BYTES = 64 * 1024 * 1024;
export const LOCKFILE_MAX_ENTRIES = 200_000;

/** npm's names for a lockfile, the one it prefers first. */
export const LOCKFILE_NAMES = ['npm-shrinkwrap.json', 'package-lock.json'] as const;

export interface LockedPackage {
  /** The lockfile's key: `node_modules/a`, `node_modules/@s/p`, `node_modules/a/node_modules/b`. */
  path: string;
  name: string;
  version?: string;
  license?: string;
  integrity?: string;
  optional: boolean;
  /** The lockfile's `os` and `cpu` fields (npm's names: `linux`, `x64`; `!name` excludes one). */
  os?: string[];
  cpu?: string[];
  /** The names it requires (`dependencies`, `optionalDependencies`, `peerDependencies`), sorted. */
  dependencies?: string[];
}

export interface Lockfile {
  /** The lockfile's path on disk. */
  file: string;
  version: number;
  /** Production packages (not `dev`), in the lockfile's order. */
  production: LockedPackage[];
  /** sha256 of the lockfile's bytes (`sha256:HEX`): part of the dependency layer's cache key. */
  hash: string;
  /** The names the app itself requires (its `""` entry's dependencies, optional and peer ones). */
  rootDependencies?: string[];
}

/** npm's longest package name; longer names and versions are refused (they could not be installed). */
const NAME_MAX = 214;
const VERSION_MAX = 256;
const FIELD_MAX = 4096;
/** How deep node_modules may nest, and how many dependency names all entries may list together. */
const NESTING_MAX = 64;
export const DEPENDENCY_NAMES_MAX = 1_000_000;
/** How many names an `os` or `cpu` list may hold, and how long each may be. */
const PLATFORM_LIST_MAX = 32;
const PLATFORM_NAME_MAX = 32;

/** A lockfile key or value as messages quote it: JSON, cut short. */
export function quoted(s: string, max = 120): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

/** The dependency names of a lockfile entry, checked (undefined when it lists none). */
function dependencyNames(e: Record<string, unknown>, where: string): string[] | undefined {
  const names = new Set<string>();
  for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
    const v = e[field];
    if (v === undefined) continue;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OciToolError('INVALID_JSON', `${where}: "${field}" is not an object`);
    for (const n of Object.keys(v)) {
      if (n.length === 0 || n.length > NAME_MAX) throw new OciToolError('INVALID_JSON', `${where}: "${field}" names a package ${quoted(n)} of ${n.length} characters (at most ${NAME_MAX})`);
      names.add(n);
    }
  }
  return names.size ? [...names].sort() : undefined;
}

// node_modules/NAME or node_modules/@SCOPE/NAME, repeated for nested installs.
const SEGMENT = String.raw`node_modules/(?:@[^/@.][^/]*/)?[^/@.][^/]*`;
const PACKAGE_PATH = new RegExp(`^${SEGMENT}(?:/${SEGMENT})*$`);

/**
 * Reads a regular file under a byte cap; `what` names it in messages. Opened without blocking and
 * checked first: a FIFO or a device in its place is refused, not waited on or read without end.
 * The buffer is sized from the file's size (a file that grows meanwhile is read on, to the cap).
 */
export async function readCapped(file: string, max: number, what: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw openFailure(err, file, what);
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new OciToolError('UNSUPPORTED', `${what} ${file}: not a regular file`);
    const r = new CappedRead(s.size, max, file, what);
    while (r.more(await fh.read(r.buf, r.total, r.buf.length - r.total, null).then((x) => x.bytesRead)));
    return r.bytes();
  } catch (err) {
    throw readFailure(err, file, what);
  } finally {
    await fh.close();
  }
}

/**
 * readCapped, synchronously, for many small files (each installed package's package.json), where
 * the awaits cost more than the reads. `noFollow`: a symbolic link is refused (ELOOP), not followed.
 */
export function readCappedSync(file: string, max: number, what: string, opts: { noFollow?: boolean } = {}): Buffer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0));
  } catch (err) {
    throw openFailure(err, file, what);
  }
  try {
    const s = fstatSync(fd);
    if (!s.isFile()) throw new OciToolError('UNSUPPORTED', `${what} ${file}: not a regular file`);
    const r = new CappedRead(s.size, max, file, what);
    while (r.more(readSync(fd, r.buf, r.total, r.buf.length - r.total, null)));
    return r.bytes();
  } catch (err) {
    throw readFailure(err, file, what);
  } finally {
    closeSync(fd);
  }
}

/** The buffer of a capped read: room for the size the file had plus one byte (to see it grew), grown to the cap + 1 at most. */
class CappedRead {
  buf: Buffer;
  total = 0;
  constructor(
    size: number,
    private readonly max: number,
    private readonly file: string,
    private readonly what: string,
  ) {
    this.buf = Buffer.allocUnsafe(Math.min(size, max) + 1);
  }

  /** Takes a read's count; whether to read on. */
  more(n: number): boolean {
    if (n === 0) return false;
    this.total += n;
    if (this.total > this.max) throw new OciToolError('TOO_LARGE', `${this.what} ${this.file}: larger than ${this.max} bytes`);
    if (this.total === this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.max + 1, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.total);
      this.buf = grown;
    }
    return true;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.total);
  }
}

function openFailure(err: unknown, file: string, what: string): OciToolError {
  if (errno(err) === 'ENOENT') return new OciToolError('NOT_FOUND', `${what} ${file}: no such file`);
  if (errno(err) === 'ELOOP') return new OciToolError('UNSUPPORTED', `${what} ${file}: a symbolic link, not a regular file`);
  return new OciToolError('IO', `${what} ${file}: ${errno(err) ?? (err as Error).message}`, { cause: err });
}

function readFailure(err: unknown, file: string, what: string): OciToolError {
  if (err instanceof OciToolError) return err;
  return new OciToolError('IO', `${what} ${file}: ${errno(err) ?? (err as Error).message}`, { cause: err });
}

/** Parses JSON that must be an object; `what file` names it in messages. */
export function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new OciToolError('INVALID_JSON', `${what}: not JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OciToolError('INVALID_JSON', `${what}: expected a JSON object`);
  return v as Record<string, unknown>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The production packages of a lockfile (v2/v3 `packages` map), as `npm ci --omit=dev` installs
 * them: `dev` entries are left out; `optional` and `devOptional` ones (the latter an optional
 * dependency of a production package as well as a dev one) are kept when installed. A key that is not
 * a node_modules path (climbs out, absolute, odd) is refused, and so are links (workspaces, `file:`).
 */
export function productionPackages(doc: Record<string, unknown>, file: string): LockedPackage[] {
  const version = doc.lockfileVersion;
  if (version === 1 || doc.packages === undefined) {
    throw new OciToolError('UNSUPPORTED', `lockfile ${file}: lockfileVersion ${String(version)} has no "packages" map (npm 7 or later writes one)`);
  }
  const packages = doc.packages;
  if (typeof packages !== 'object' || packages === null || Array.isArray(packages)) throw new OciToolError('INVALID_JSON', `lockfile ${file}: "packages" is not an object`);
  const keys = Object.keys(packages);
  if (keys.length > LOCKFILE_MAX_ENTRIES) throw new OciToolError('TOO_LARGE', `lockfile ${file}: ${keys.length} packages, more than ${LOCKFILE_MAX_ENTRIES}`);
  const out: LockedPackage[] = [];
  let names = 0;
  for (const key of keys) {
    if (key === '') continue; // the app itself
    const raw = (packages as Record<string, unknown>)[key];
    if (typeof raw !== 'object' || raw === null) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${quoted(key)} is not an object`);
    const e = raw as Record<string, unknown>;
    if (key.length > FIELD_MAX) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${quoted(key)} is a path of ${key.length} characters (at most ${FIELD_MAX})`);
    const segments = key.split(/[/\\]/);
    if (segments.filter((g) => g === 'node_modules').length > NESTING_MAX) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${quoted(key)} nests node_modules more than ${NESTING_MAX} deep`);
    if (key.startsWith('/') || /^[a-zA-Z]:/.test(key) || key.includes('\\') || segments.some((s) => s === '..' || s === '.' || s === '')) {
      throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${quoted(key)} is a path outside the app`);
    }
    if (!key.startsWith('node_modules/') && !key.includes('/node_modules/')) continue; // a workspace's own folder: a link target
    if (!PACKAGE_PATH.test(key)) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${quoted(key)} is not a node_modules/NAME path`);
    if (e.dev === true) continue;
    if (e.link === true) {
      throw new OciToolError('UNSUPPORTED', `lockfile ${file}: entry ${quoted(key)} is a link to ${quoted(str(e.resolved) ?? '?')} (workspaces and file: links cannot be packaged yet)`);
    }
    const where = `lockfile ${file}: entry ${quoted(key)}`;
    const name = str(e.name) ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    if (name.length === 0 || name.length > NAME_MAX || /[\x00-\x20\x7f]/.test(name)) throw new OciToolError('INVALID_JSON', `${where}: the package name ${quoted(name)} is not an npm name (at most ${NAME_MAX} characters, no spaces)`);
    const pkg: LockedPackage = { path: key, name, optional: e.optional === true || e.devOptional === true };
    const v = str(e.version);
    if (v !== undefined && (v.length > VERSION_MAX || /[\x00-\x20\x7f]/.test(v))) throw new OciToolError('INVALID_JSON', `${where}: the version ${quoted(v)} is not a version (at most ${VERSION_MAX} characters, no spaces)`);
    if (v !== undefined) pkg.version = v;
    // Only carried into the SBOM, which checks them: odd values are dropped there, not here.
    const license = str(e.license);
    if (license !== undefined && license.length <= FIELD_MAX) pkg.license = license;
    const integrity = str(e.integrity);
    if (integrity !== undefined && integrity.length <= FIELD_MAX) pkg.integrity = integrity;
    for (const field of ['os', 'cpu'] as const) {
      const v = e[field];
      if (v === undefined) continue;
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new OciToolError('INVALID_JSON', `${where}: "${field}" is not a list of strings`);
      // npm's names are short and few (linux, win32; x64, !arm64): messages quote the list whole.
      if (list.length > PLATFORM_LIST_MAX) throw new OciToolError('INVALID_JSON', `${where}: "${field}" lists ${list.length} names (at most ${PLATFORM_LIST_MAX})`);
      const long = list.find((x) => x.length > PLATFORM_NAME_MAX);
      if (long !== undefined) throw new OciToolError('INVALID_JSON', `${where}: "${field}" holds a name ${quoted(long, 40)} of ${long.length} characters (at most ${PLATFORM_NAME_MAX})`);
      pkg[field] = list;
    }
    const deps = dependencyNames(e, where);
    if (deps) {
      pkg.dependencies = deps;
      names += deps.length;
      if (names > DEPENDENCY_NAMES_MAX) throw new OciToolError('TOO_LARGE', `lockfile ${file}: its production entries name more than ${DEPENDENCY_NAMES_MAX} dependencies`);
    }
    out.push(pkg);
  }
  return out;
}

/** Finds and reads DIR's lockfile (npm-shrinkwrap.json first, as npm does). */
export async function readLockfile(dir: string): Promise<Lockfile> {
  let file: string | undefined;
  for (const name of LOCKFILE_NAMES) {
    if (await exists(join(dir, name))) {
      file = join(dir, name);
      break;
    }
  }
  if (file === undefined) throw new OciToolError('NOT_FOUND', `--app ${dir}: no package-lock.json or npm-shrinkwrap.json (run npm install to write one)`);
  const bytes = await readCapped(file, LOCKFILE_MAX_BYTES, 'lockfile');
  const doc = parseJsonObject(bytes, `lockfile ${file}`);
  const hash = digestOf(bytes);
  const production = productionPackages(doc, file);
  const root = (doc.packages as Record<string, unknown>)[''];
  const rootDependencies = typeof root === 'object' && root !== null ? dependencyNames(root as Record<string, unknown>, `lockfile ${file}: entry ""`) : undefined;
  return { file, version: typeof doc.lockfileVersion === 'number' ? doc.lockfileVersion : 0, production, hash, ...(rootDependencies ? { rootDependencies } : {}) };
}

/**
 * How `rel` is installed under DIR, each step looked at without following links: 'dir', undefined
 * when missing, or what stands in the way ('a symlink at node_modules/x', 'a file at …'). `seen`
 * holds the steps already looked at (packages share their leading folders). Synchronous: a few
 * hundred lstats of folders in the inode cache take a few milliseconds, one await each took ten
 * times as long.
 */
function installedAs(dir: string, rel: string, seen: Map<string, string | undefined>): string | undefined {
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const at = parts.slice(0, i).join('/');
    let kind: string | undefined;
    if (seen.has(at)) kind = seen.get(at);
    else {
      try {
        const s = lstatSync(join(dir, at));
        kind = s.isSymbolicLink() ? `a symlink at ${at}` : s.isDirectory() ? 'dir' : `a file at ${at}`;
      } catch (err) {
        if (errno(err) !== 'ENOENT' && errno(err) !== 'ENOTDIR') throw new OciToolError('IO', `--app ${dir}: ${at}: ${errno(err) ?? (err as Error).message}`, { cause: err });
        kind = undefined;
      }
      seen.set(at, kind);
    }
    if (kind !== 'dir') return kind;
  }
  return 'dir';
}

/**
 * The production packages installed under DIR: a missing optional one is skipped (npm skips those
 * that do not fit the platform); any other missing one is refused, named.
 */
export async function installedPackages(dir: string, lock: Lockfile): Promise<LockedPackage[]> {
  const out: LockedPackage[] = [];
  const seen = new Map<string, string | undefined>();
  for (const p of lock.production) {
    const kind = installedAs(dir, p.path, seen);
    if (kind === 'dir') out.push(p);
    else if (kind !== undefined) {
      throw new OciToolError('UNSUPPORTED', `--app ${dir}: ${p.path} (${p.name}, in ${lock.file}) is ${kind}, not a package folder as npm ci installs it`);
    } else if (!p.optional) throw new OciToolError('NOT_FOUND', `--app ${dir}: ${p.name}${p.version ? `@${p.version}` : ''} (${p.path}, in ${lock.file}) is not installed; run npm ci`);
  }
  return out;
}
