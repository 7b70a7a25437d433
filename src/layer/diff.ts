import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { OciToolError } from '../util/errors.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX, type EntryConverter } from './entries.js';
import type { LayerEntry } from './tar.js';
import { compareNames, statEntry, walkTree, type TreeEntry } from './walk.js';

export interface DiffStats {
  added: number;
  changed: number;
  deleted: number;
  opaque: number;
  unchanged: number;
}

/**
 * The entries of one layer that turns tree `lower` into tree `upper`: added and changed entries,
 * `.wh.NAME` for deletions (before their siblings), an opaque whiteout for a directory whose lower
 * content is all gone (replaced a non-directory, or emptied and refilled) when that takes fewer
 * entries, and the parents of every changed entry. Equal content with another mtime is no change;
 * files are compared by size first and by content only when sizes agree.
 */
export async function* diffEntries(lower: string, upper: string, conv: EntryConverter, stats?: DiffStats): AsyncGenerator<LayerEntry> {
  for (const root of [lower, upper]) {
    const e = await statEntry(root, '').catch(() => undefined);
    if (e?.type !== 'dir') throw new OciToolError('USAGE', `--diff: ${root} is not a directory`);
  }
  yield* diffAgainst(new DirTree(lower), upper, conv, stats);
}

/**
 * The lower side of a diff: a directory on disk, or anything that can list, describe and compare
 * its entries as one (repack's record of an unpacked image).
 */
export interface LowerTree {
  /** Children of the directory `rel`, in byte order of their names. */
  names(rel: string): Promise<string[]>;
  stat(rel: string): Promise<TreeEntry>;
  /** Whether the regular file `rel` holds the same bytes as `upper` (same size already checked). */
  sameContent(rel: string, upper: TreeEntry): Promise<boolean>;
}

/** A directory on disk as the lower side of a diff. */
export class DirTree implements LowerTree {
  constructor(readonly root: string) {}
  names(rel: string): Promise<string[]> {
    return sortedNames(rel === '' ? this.root : join(this.root, rel));
  }
  stat(rel: string): Promise<TreeEntry> {
    return statEntry(rel === '' ? this.root : join(this.root, rel), rel);
  }
  sameContent(rel: string, upper: TreeEntry): Promise<boolean> {
    return sameContent(join(this.root, rel), upper.abs, upper.size);
  }
}

export interface DiffOptions {
  /** Rewrites each upper entry before it is compared and packed (owners seen as the image sees them). */
  upper?: (e: TreeEntry) => TreeEntry;
}

/** diffEntries against any lower tree (see LowerTree). */
export async function* diffAgainst(lower: LowerTree, upper: string, conv: EntryConverter, stats?: DiffStats, opts: DiffOptions = {}): AsyncGenerator<LayerEntry> {
  const s = stats ?? { added: 0, changed: 0, deleted: 0, opaque: 0, unchanged: 0 };
  yield* diffDir(lower, upper, '', conv, [], s, opts.upper ?? ((e) => e));
}

async function sortedNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort(compareNames);
  } catch (err) {
    throw new OciToolError('IO', `cannot read directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** `held`: unchanged parent directories, emitted just before the first change below them. */
async function* diffDir(lower: LowerTree, upperAbs: string, rel: string, conv: EntryConverter, held: LayerEntry[], s: DiffStats, view: (e: TreeEntry) => TreeEntry): AsyncGenerator<LayerEntry> {
  const [lowerNames, upperNames] = await Promise.all([lower.names(rel), sortedNames(upperAbs)]);
  const upperSet = new Set(upperNames);
  const lowerSet = new Set(lowerNames);
  const deleted = lowerNames.filter((n) => !upperSet.has(n));
  const common = upperNames.filter((n) => lowerSet.has(n));
  const child = (n: string): string => (rel === '' ? n : `${rel}/${n}`);

  // Every lower child is gone: one opaque whiteout beats several explicit ones.
  if (deleted.length >= 2 && common.length === 0 && rel !== '') {
    yield* held.splice(0);
    yield conv.whiteout(`${rel}/${OPAQUE_WHITEOUT}`);
    s.opaque++;
    s.deleted += deleted.length;
  } else if (deleted.length > 0) {
    yield* held.splice(0);
    for (const n of deleted) yield conv.whiteout(child(`${WHITEOUT_PREFIX}${n}`));
    s.deleted += deleted.length;
  }

  for (const name of upperNames) {
    const path = child(name);
    const u = view(await statEntry(join(upperAbs, name), path));
    if (!lowerSet.has(name)) {
      yield* held.splice(0);
      yield* emitTree(u, conv, s, view);
      continue;
    }
    const l = await lower.stat(path);
    if (l.type !== u.type) {
      yield* held.splice(0);
      if (u.type === 'dir') {
        // A directory where a non-directory was: mark it opaque so nothing of the lower entry survives.
        const e = conv.convert(u, path);
        if (e) yield e;
        yield conv.whiteout(`${path}/${OPAQUE_WHITEOUT}`);
        s.opaque++;
        for await (const t of walkTree(u.abs)) {
          const c = conv.convert(view({ ...t, path: `${path}/${t.path}` }), `${path}/${t.path}`);
          if (c) yield c;
          s.added++;
        }
        s.changed++;
      } else {
        const e = conv.convert(u, path);
        if (e) yield e;
        s.changed++;
      }
      continue;
    }
    if (u.type === 'dir') {
      const dirEntry = conv.convert(u, path);
      if (!dirEntry) continue;
      if (metaChanged(l, u)) {
        yield* held.splice(0);
        yield dirEntry;
        s.changed++;
        yield* diffDir(lower, u.abs, path, conv, held, s, view);
      } else {
        held.push(dirEntry);
        yield* diffDir(lower, u.abs, path, conv, held, s, view);
        if (held[held.length - 1] === dirEntry) {
          held.pop(); // nothing below it changed
          s.unchanged++;
        }
      }
      continue;
    }
    if (await entryChanged(lower, l, u)) {
      yield* held.splice(0);
      const e = conv.convert(u, path);
      if (e) yield e;
      s.changed++;
    } else {
      s.unchanged++;
    }
  }
}

async function* emitTree(root: TreeEntry, conv: EntryConverter, s: DiffStats, view: (e: TreeEntry) => TreeEntry): AsyncGenerator<LayerEntry> {
  const e = conv.convert(root, root.path);
  if (!e) return;
  yield e;
  s.added++;
  if (root.type !== 'dir') return;
  for await (const t of walkTree(root.abs)) {
    const path = `${root.path}/${t.path}`;
    const c = conv.convert(view({ ...t, path }), path);
    if (c) yield c;
    s.added++;
  }
}

function metaChanged(l: TreeEntry, u: TreeEntry): boolean {
  return l.mode !== u.mode || l.uid !== u.uid || l.gid !== u.gid;
}

/** Type, mode, owner, size, link target, device number, then content (only when sizes agree). */
async function entryChanged(lower: LowerTree, l: TreeEntry, u: TreeEntry): Promise<boolean> {
  if (metaChanged(l, u) || l.size !== u.size || l.linkTarget !== u.linkTarget || l.rdev !== u.rdev) return true;
  if (u.type !== 'file') return false;
  return !(await lower.sameContent(u.path, u));
}

async function sameContent(a: string, b: string, size: number): Promise<boolean> {
  if (size === 0) return true;
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const n = Math.min(size, 1 << 20);
    const ba = Buffer.allocUnsafe(n);
    const bb = Buffer.allocUnsafe(n);
    for (let off = 0; off < size; ) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, n, off), fb.read(bb, 0, n, off)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      off += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}
