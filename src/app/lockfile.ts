import { lstat, open } from 'node:fs/promises';
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
}

export interface Lockfile {
  /** The lockfile's path on disk. */
  file: string;
  version: number;
  /** Production packages (not `dev`), in the lockfile's order. */
  production: LockedPackage[];
  /** sha256 of the lockfile's bytes (`sha256:HEX`): part of the dependency layer's cache key. */
  hash: string;
}

// node_modules/NAME or node_modules/@SCOPE/NAME, repeated for nested installs.
const SEGMENT = String.raw`node_modules/(?:@[^/@.][^/]*/)?[^/@.][^/]*`;
const PACKAGE_PATH = new RegExp(`^${SEGMENT}(?:/${SEGMENT})*$`);

/** Reads a file under a byte cap; `what` names it in messages. */
export async function readCapped(file: string, max: number, what: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `${what} ${file}: no such file`);
    throw new OciToolError('IO', `${what} ${file}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(1 << 20, max + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > max) throw new OciToolError('TOO_LARGE', `${what} ${file}: larger than ${max} bytes`);
      chunks.push(buf.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks);
  } catch (err) {
    if (err instanceof OciToolError) throw err;
    throw new OciToolError('IO', `${what} ${file}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
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
  for (const key of keys) {
    if (key === '') continue; // the app itself
    const raw = (packages as Record<string, unknown>)[key];
    if (typeof raw !== 'object' || raw === null) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${JSON.stringify(key)} is not an object`);
    const e = raw as Record<string, unknown>;
    const segments = key.split(/[/\\]/);
    if (key.startsWith('/') || /^[a-zA-Z]:/.test(key) || key.includes('\\') || segments.some((s) => s === '..' || s === '.' || s === '')) {
      throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${JSON.stringify(key)} is a path outside the app`);
    }
    if (!key.startsWith('node_modules/') && !key.includes('/node_modules/')) continue; // a workspace's own folder: a link target
    if (!PACKAGE_PATH.test(key)) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${JSON.stringify(key)} is not a node_modules/NAME path`);
    if (e.dev === true) continue;
    if (e.link === true) {
      throw new OciToolError('UNSUPPORTED', `lockfile ${file}: entry ${JSON.stringify(key)} is a link to ${JSON.stringify(str(e.resolved) ?? '?')} (workspaces and file: links cannot be packaged yet)`);
    }
    const name = str(e.name) ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const pkg: LockedPackage = { path: key, name, optional: e.optional === true || e.devOptional === true };
    const v = str(e.version);
    if (v !== undefined) pkg.version = v;
    const license = str(e.license);
    if (license !== undefined) pkg.license = license;
    const integrity = str(e.integrity);
    if (integrity !== undefined) pkg.integrity = integrity;
    for (const field of ['os', 'cpu'] as const) {
      const v = e[field];
      if (v === undefined) continue;
      const list = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new OciToolError('INVALID_JSON', `lockfile ${file}: entry ${JSON.stringify(key)}: "${field}" is not a list of strings`);
      pkg[field] = list;
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
  return { file, version: typeof doc.lockfileVersion === 'number' ? doc.lockfileVersion : 0, production: productionPackages(doc, file), hash };
}

/**
 * How `rel` is installed under DIR, each step looked at without following links: 'dir', undefined
 * when missing, or what stands in the way ('a symlink at node_modules/x', 'a file at …').
 */
async function installedAs(dir: string, rel: string): Promise<string | undefined> {
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const at = parts.slice(0, i).join('/');
    let s;
    try {
      s = await lstat(join(dir, at));
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw new OciToolError('IO', `--app ${dir}: ${at}: ${errno(err) ?? (err as Error).message}`, { cause: err });
    }
    if (s.isSymbolicLink()) return `a symlink at ${at}`;
    if (!s.isDirectory()) return `a file at ${at}`;
  }
  return 'dir';
}

/**
 * The production packages installed under DIR: a missing optional one is skipped (npm skips those
 * that do not fit the platform); any other missing one is refused, named.
 */
export async function installedPackages(dir: string, lock: Lockfile): Promise<LockedPackage[]> {
  const out: LockedPackage[] = [];
  for (const p of lock.production) {
    const kind = await installedAs(dir, p.path);
    if (kind === 'dir') out.push(p);
    else if (kind !== undefined) {
      throw new OciToolError('UNSUPPORTED', `--app ${dir}: ${p.path} (${p.name}, in ${lock.file}) is ${kind}, not a package folder as npm ci installs it`);
    } else if (!p.optional) throw new OciToolError('NOT_FOUND', `--app ${dir}: ${p.name}${p.version ? `@${p.version}` : ''} (${p.path}, in ${lock.file}) is not installed; run npm ci`);
  }
  return out;
}
