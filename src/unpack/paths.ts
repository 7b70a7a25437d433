/**
 * Paths of layer entries, resolved so that nothing outside the root filesystem is ever touched.
 *
 * An entry's name is taken relative to the root (a leading `./` is dropped; an absolute name is
 * refused) and normalised lexically; a name whose `..` climbs above the root is refused. Its parent directories are then
 * walked one by one from the root with lstat, never letting the kernel follow a link: a symlink met
 * on the way is resolved by hand, as inside the container (an absolute target starts again from the
 * root), so that `lib/x` under `lib -> /usr/lib` lands in `ROOT/usr/lib/x`. A relative target that
 * climbs above the root (`../../etc`) is refused: no image built by a real tool has one, and writing
 * through it is the classic escape. The last component is never resolved: it is what the entry
 * creates or replaces.
 *
 * The unpacker is the only writer of the tree, so directories already walked are remembered (and
 * forgotten, with everything below them, when they are removed or replaced; a child index makes that
 * cost the size of what is forgotten, never a scan of all): most entries resolve with no system call. The calls are synchronous: entries are applied one at a time anyway, and a synchronous
 * lstat costs a fraction of a trip through the thread pool.
 */
import { lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import { errno } from '../util/errors.js';

/** Why an entry was refused; the unpacker turns it into one line naming the layer and entry. */
export class UnsafeEntry extends Error {}

/**
 * An entry name as a list of components relative to the root, or UnsafeEntry. Names are relative in
 * every layer a real tool writes (docker, buildkit, umoci, GNU tar all strip the leading '/'); an
 * absolute name is refused, as is one whose `..` climbs above the root.
 */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new UnsafeEntry('a NUL byte in its name');
  if (name.startsWith('/') && name.replace(/\/+/g, '/') !== '/') throw new UnsafeEntry('an absolute path (layer entries are relative to the root)');
  // './' and '.' (what `tar -C DIR .` writes first) are the root itself.
  const rel = posix.normalize(`./${name.replace(/^\/+/, '')}`).replace(/\/+$/, '');
  if (rel === '..' || rel.startsWith('../')) throw new UnsafeEntry('its path climbs out of the root filesystem');
  return rel === '.' || rel === '' ? [] : rel.split('/');
}

const MAX_LINKS = 255;

/** The parent of a relative '/'-joined path ('' for a top-level name). */
export const parentOf = (rel: string): string => rel.slice(0, Math.max(0, rel.lastIndexOf('/')));

/**
 * Values by relative path with each path's children indexed, so that dropping a path and everything
 * below it costs the size of that subtree, never a scan of the whole map.
 */
export class PathMap<V> {
  private readonly values = new Map<string, V>();
  private readonly kids = new Map<string, Set<string>>();

  get size(): number {
    return this.values.size;
  }
  get(rel: string): V | undefined {
    return this.values.get(rel);
  }
  has(rel: string): boolean {
    return this.values.has(rel);
  }
  set(rel: string, value: V): void {
    if (!this.values.has(rel) && rel !== '') {
      const parent = parentOf(rel);
      let set = this.kids.get(parent);
      if (!set) this.kids.set(parent, (set = new Set()));
      set.add(rel);
    }
    this.values.set(rel, value);
  }
  /** The paths directly below `rel` (a copy: safe to change the map while going through it). */
  children(rel: string): string[] {
    return [...(this.kids.get(rel) ?? [])];
  }
  /** Drops `rel` and everything below it, telling `each` of every path dropped. */
  deleteTree(rel: string, each?: (rel: string) => void): void {
    if (this.values.delete(rel)) each?.(rel);
    if (rel !== '') this.kids.get(parentOf(rel))?.delete(rel);
    const stack = [rel];
    while (stack.length > 0) {
      const d = stack.pop()!;
      const below = this.kids.get(d);
      if (!below) continue;
      this.kids.delete(d);
      for (const c of below) {
        if (this.values.delete(c)) each?.(c);
        stack.push(c);
      }
    }
  }
  entries(): IterableIterator<[string, V]> {
    return this.values.entries();
  }
}

/** A filesystem error as a few words (no errno text, no path: the caller names the entry). */
export function fsErrorText(err: unknown): string {
  const code = errno(err);
  const words: Record<string, string> = {
    ENAMETOOLONG: 'its name is too long for this filesystem',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'the filesystem is read-only',
    EMLINK: 'too many links',
    ELOOP: 'too many levels of symbolic links',
    ENOTDIR: 'a folder on its path is not a directory',
    EEXIST: 'something is already there',
    EISDIR: 'a directory is in the way',
    ENOTEMPTY: 'a directory that is not empty is in the way',
    EXDEV: 'it would cross filesystems',
    EIO: 'input/output error',
    EINVAL: 'invalid argument',
  };
  return (code && words[code]) ?? (code ? `failed (${code})` : (err as Error).message.split('\n')[0]!);
}

/** What a component on an entry's path is, to resolveParents. */
export type Found = { kind: 'dir' } | { kind: 'missing' } | { kind: 'other' } | { kind: 'symlink'; target: string };
const DIR: Found = { kind: 'dir' };
const MISSING: Found = { kind: 'missing' };
const OTHER: Found = { kind: 'other' };

/**
 * The rules of the module comment for the parents of `parts`, over any tree: `look` says what a
 * resolved relative path is, `missing` makes it a directory (or throws). Used on disk (RootResolver)
 * and on flatten's map of paths. Returns the entry's path, its last component unresolved.
 */
export function resolveParents(parts: string[], look: (rel: string) => Found, missing: (rel: string) => void): string {
  const stack = parts.slice(0, -1).reverse();
  const done: string[] = [];
  let links = 0;
  while (stack.length > 0) {
    const c = stack.pop()!;
    if (c === '.' || c === '') continue;
    if (c === '..') {
      if (done.length === 0) throw new UnsafeEntry('a symlink on its path climbs out of the root filesystem');
      done.pop();
      continue;
    }
    const rel = [...done, c].join('/');
    const found = look(rel);
    if (found.kind === 'symlink') {
      if (++links > MAX_LINKS) throw new UnsafeEntry('too many symlinks on its path');
      if (found.target.startsWith('/')) done.length = 0; // absolute: from the root of the image
      const more = found.target.split('/').filter((x) => x !== '');
      for (let i = more.length - 1; i >= 0; i--) stack.push(more[i]!);
      continue;
    }
    if (found.kind === 'other') throw new UnsafeEntry(`${rel} is not a directory`);
    if (found.kind === 'missing') missing(rel);
    done.push(c);
  }
  return [...done, parts[parts.length - 1]!].join('/');
}

export class RootResolver {
  /** Resolved directory paths (relative, '/'-joined) known to be real directories. */
  private readonly dirs = new PathMap<true>();

  constructor(readonly root: string) {
    this.dirs.set('', true);
  }

  /** Forgets what is known at and under `rel` (it was removed or replaced). */
  forget(rel: string): void {
    this.dirs.deleteTree(rel);
    this.dirs.set('', true);
  }

  /** Notes that `rel` is now a real directory. */
  known(rel: string): void {
    this.dirs.set(rel, true);
  }

  /**
   * Resolves the parents of `parts` (see the module comment) and returns the entry's path relative to
   * the root ('/'-joined, its last component unresolved). Missing parents are created (mode 0755) and
   * reported through `created`; with `create` false a missing parent is an UnsafeEntry.
   */
  resolve(parts: string[], opts: { create?: boolean; created?: (rel: string) => void } = {}): string {
    if (parts.length === 0) return '';
    const parentKey = parts.slice(0, -1).join('/');
    if (this.dirs.has(parentKey)) return parts.join('/');
    const look = (rel: string): Found => {
      if (this.dirs.has(rel)) return DIR;
      const host = join(this.root, rel);
      let st;
      try {
        st = lstatSync(host);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err; // the caller names the entry
        return MISSING;
      }
      if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(host) };
      if (!st.isDirectory()) return OTHER;
      this.dirs.set(rel, true);
      return DIR;
    };
    return resolveParents(parts, look, (rel) => {
      if (opts.create === false) throw new UnsafeEntry(`${rel} does not exist in the root filesystem`);
      mkdirSync(join(this.root, rel), { mode: 0o755 });
      opts.created?.(rel);
      this.dirs.set(rel, true);
    });
  }
}
