import { lstat } from 'node:fs/promises';
import { posix } from 'node:path';
import { OciToolError, errno } from '../util/errors.js';
import { archivePath, type EntryConverter } from './entries.js';
import type { IgnoreMatcher } from './ignore.js';
import type { LayerEntry } from './tar.js';
import { statEntry, walkTree, type TreeEntry, type WalkTreeOptions } from './walk.js';

/** Directory entries for every parent of `name` (not `name` itself), outermost first. */
export function* parentsOf(name: string, conv: EntryConverter): Generator<LayerEntry> {
  const parts = name.split('/').slice(0, -1);
  for (let i = 1; i <= parts.length; i++) yield conv.parentDir(parts.slice(0, i).join('/'));
}

/**
 * The entries of a layer that puts `src` at `dest` (like a Dockerfile COPY): a directory's contents go
 * under `dest` (which gets the directory's own mode), a single file goes to `dest`, or into it when
 * `dest` ends with '/'. With `parents` (a scratch image), the parents of `dest` are entries of their
 * own, 0755; on a base they are left out, so that the base's directories (`/tmp` 1777, `/root` 0700,
 * their owners) stay as they are: runtimes, umoci and ocitool's unpack make a missing parent 0755.
 */
export async function* addEntries(src: string, dest: string, conv: EntryConverter, ignore?: IgnoreMatcher, opts: { parents?: boolean } = {}): AsyncGenerator<LayerEntry> {
  const parents = opts.parents ?? true;
  const root = await statSource(src, '--add');
  if (root.type !== 'dir') {
    const name = archivePath(dest.endsWith('/') ? posix.join(dest, posix.basename(src)) : dest, '');
    if (name === '') throw new OciToolError('USAGE', `--add ${src}:${dest}: a file needs a destination path`);
    if (parents) yield* parentsOf(name, conv);
    const e = conv.convert(root, name);
    if (e) yield e;
    return;
  }
  const exclude = ignore && !ignore.empty ? (p: string) => ignore.excludes(p) : undefined;
  yield* treeEntries(src, root, dest, conv, { parents, ...(exclude ? { exclude } : {}), reinclude: ignore?.hasNegations ?? false });
}

/**
 * The entries of a directory `src` (already lstat'ed as `root`) put at `dest`: the directory itself
 * (its own mode), then what the walk keeps (see walkTree: `exclude`, `reinclude`), never following a
 * symlink. With `parents`, the parents of `dest` too (0755).
 */
export async function* treeEntries(src: string, root: TreeEntry, dest: string, conv: EntryConverter, opts: WalkTreeOptions & { parents: boolean; walked?: Iterable<TreeEntry> }): AsyncGenerator<LayerEntry> {
  const { parents, walked, ...walk } = opts;
  const base = archivePath(dest, '');
  if (base !== '') {
    if (parents) yield* parentsOf(base, conv);
    const e = conv.convert(root, base);
    if (e) yield e;
  }
  // A walk made already (a cache fingerprint's, just before) is used as it is: no second lstat of every entry.
  for await (const t of walked ?? walkTree(src, walk)) {
    const e = conv.convert(t, archivePath(base, t.path));
    if (e) yield e;
  }
}

/** treeEntries of the directory `src`, refused (named by `what`) when it is missing or no directory. */
export async function* selectEntries(src: string, dest: string, conv: EntryConverter, what: string, opts: WalkTreeOptions & { parents: boolean; walked?: Iterable<TreeEntry> }): AsyncGenerator<LayerEntry> {
  const root = await statSource(src, what);
  if (root.type !== 'dir') throw new OciToolError('USAGE', `${what} ${src}: not a directory`);
  yield* treeEntries(src, root, dest, conv, opts);
}

/** lstat of a layer's source, refused (named by `what`) when missing or unreadable. */
async function statSource(src: string, what: string): Promise<TreeEntry> {
  try {
    return await statEntry(src, '');
  } catch (err) {
    if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `${what} ${src}: no such file or directory`);
    throw new OciToolError('IO', `${what} ${src}: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether a path exists (lstat, so a dangling symlink exists). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
