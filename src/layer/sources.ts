import { lstat } from 'node:fs/promises';
import { posix } from 'node:path';
import { OciToolError, errno } from '../util/errors.js';
import { archivePath, type EntryConverter } from './entries.js';
import type { IgnoreMatcher } from './ignore.js';
import type { LayerEntry } from './tar.js';
import { statEntry, walkTree } from './walk.js';

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
  let root;
  try {
    root = await statEntry(src, '');
  } catch (err) {
    if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `--add ${src}: no such file or directory`);
    throw new OciToolError('IO', `--add ${src}: ${(err as Error).message}`, { cause: err });
  }
  if (root.type !== 'dir') {
    const name = archivePath(dest.endsWith('/') ? posix.join(dest, posix.basename(src)) : dest, '');
    if (name === '') throw new OciToolError('USAGE', `--add ${src}:${dest}: a file needs a destination path`);
    if (parents) yield* parentsOf(name, conv);
    const e = conv.convert(root, name);
    if (e) yield e;
    return;
  }
  const base = archivePath(dest, '');
  if (base !== '') {
    if (parents) yield* parentsOf(base, conv);
    const e = conv.convert(root, base);
    if (e) yield e;
  }
  const exclude = ignore && !ignore.empty ? (p: string) => ignore.excludes(p) : undefined;
  for await (const t of walkTree(src, { ...(exclude ? { exclude } : {}), reinclude: ignore?.hasNegations ?? false })) {
    const e = conv.convert(t, archivePath(base, t.path));
    if (e) yield e;
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
