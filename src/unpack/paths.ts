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
 * forgotten when something under them is removed or replaced): most entries resolve with no system
 * call at all. The calls are synchronous: entries are applied one at a time anyway, and a synchronous
 * lstat costs a fraction of a trip through the thread pool.
 */
import { lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import { OciToolError } from '../util/errors.js';

/** Why an entry was refused; the unpacker turns it into one line naming the layer and entry. */
export class UnsafeEntry extends Error {}

/**
 * An entry name as a list of components relative to the root, or UnsafeEntry. Names are relative in
 * every layer a real tool writes (docker, buildkit, umoci, GNU tar all strip the leading '/'); an
 * absolute name is refused, as is one whose `..` climbs above the root.
 */
export function entryComponents(name: string): string[] {
  if (name.startsWith('/') && name.replace(/\/+/g, '/') !== '/') throw new UnsafeEntry('an absolute path (layer entries are relative to the root)');
  const rel = posix.normalize(`./${name.replace(/^\/+/, '')}`);
  if (rel === '..' || rel.startsWith('../')) throw new UnsafeEntry('its path climbs out of the root filesystem');
  return rel === '.' ? [] : rel.replace(/\/+$/, '').split('/');
}

const MAX_LINKS = 255;

export class RootResolver {
  /** Resolved directory paths (relative, '/'-joined) known to be real directories. */
  private readonly dirs = new Set<string>(['']);

  constructor(readonly root: string) {}

  /** Forgets what is known under `rel` (it was removed or replaced). */
  forget(rel: string): void {
    for (const d of this.dirs) if (d === rel || d.startsWith(`${rel}/`)) this.dirs.delete(d);
    this.dirs.add('');
  }

  /** Notes that `rel` is now a real directory. */
  known(rel: string): void {
    this.dirs.add(rel);
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
      if (this.dirs.has(rel)) {
        done.push(c);
        continue;
      }
      const host = join(this.root, rel);
      let st;
      try {
        st = lstatSync(host);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new OciToolError('IO', `${host}: ${(err as Error).message}`);
        if (opts.create === false) throw new UnsafeEntry(`${rel} does not exist in the root filesystem`);
        mkdirSync(host, { mode: 0o755 });
        opts.created?.(rel);
        this.dirs.add(rel);
        done.push(c);
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new UnsafeEntry('too many symlinks on its path');
        const target = readlinkSync(host);
        if (target.startsWith('/')) done.length = 0; // absolute: from the root of the image
        const more = target.split('/').filter((s) => s !== '');
        for (let i = more.length - 1; i >= 0; i--) stack.push(more[i]!);
        continue;
      }
      if (!st.isDirectory()) throw new UnsafeEntry(`${rel} is not a directory`);
      this.dirs.add(rel);
      done.push(c);
    }
    return [...done, parts[parts.length - 1]!].join('/');
  }
}
