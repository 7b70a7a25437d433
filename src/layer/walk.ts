import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { OciToolError, errno } from '../util/errors.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** One thing in a directory tree, as lstat saw it. */
export interface TreeEntry {
  /** Relative path with '/' separators, no leading './' ('' is the root itself). */
  path: string;
  /** Absolute path on disk. */
  abs: string;
  type: EntryType;
  /** Permission bits, setuid/setgid/sticky included (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** Symlink target. */
  linkTarget?: string;
  /** `dev:ino` for regular files with more than one link (hardlink detection). */
  inode?: string;
  rdev?: number;
}

export interface WalkTreeOptions {
  /** Return true to leave a path out. An excluded directory is not entered unless `reinclude` is set. */
  exclude?: (path: string, isDir: boolean) => boolean;
  /**
   * Set when exclusions have exceptions (`!pattern`): excluded directories are then entered, and
   * yielded only if something below them is kept.
   */
  reinclude?: boolean;
}

/** Byte-wise comparison of UTF-8 names (JS string order differs beyond the BMP). */
export function compareNames(a: string, b: string): number {
  // ASCII names (nearly all) compare as their UTF-16 code units, which are their bytes: no Buffer
  // pair per comparison (a sort of a big node_modules folder made tens of thousands of them).
  if (ASCII.test(a) && ASCII.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
const ASCII = /^[\x00-\x7f]*$/;

function typeOf(s: Stats): EntryType {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isCharacterDevice()) return 'char';
  if (s.isBlockDevice()) return 'block';
  if (s.isFIFO()) return 'fifo';
  return 'socket';
}

/**
 * lstat one path into a TreeEntry. Synchronous on purpose: metadata comes from the inode cache in
 * microseconds, while async calls queue in libuv's thread pool behind the compressor's deflate jobs.
 */
export function statEntrySync(abs: string, path: string): TreeEntry {
  const s = lstatSync(abs);
  const type = typeOf(s);
  const e: TreeEntry = { path, abs, type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: type === 'file' ? s.size : 0, mtimeMs: s.mtimeMs };
  if (type === 'symlink') e.linkTarget = readlinkSync(abs);
  if (type === 'file' && s.nlink > 1) {
    const big = lstatSync(abs, { bigint: true });
    e.inode = `${big.dev}:${big.ino}`;
  }
  if (type === 'char' || type === 'block') e.rdev = s.rdev;
  return e;
}

export async function statEntry(abs: string, path: string): Promise<TreeEntry> {
  return statEntrySync(abs, path);
}

/**
 * Walks a tree depth-first, siblings in byte order of their names, each directory before its
 * contents: a stable order whatever the filesystem's. Symlinks are reported, never followed. The
 * root itself is not yielded.
 */
export async function* walkTree(root: string, opts: WalkTreeOptions = {}): AsyncGenerator<TreeEntry> {
  // One hop of the event loop per entry, whatever the depth (an async generator per directory
  // made one per entry and level: most of a 17k-entry walk's time besides the lstats).
  for (const e of walkTreeSync(root, opts)) yield e;
}

/** walkTree, synchronous: readdir and lstat are metadata calls answered from the kernel's caches. */
export function* walkTreeSync(root: string, opts: WalkTreeOptions = {}): Generator<TreeEntry> {
  let rootStat;
  try {
    rootStat = lstatSync(root);
  } catch (err) {
    if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `${root}: no such file or directory`);
    throw new OciToolError('IO', `${root}: ${(err as Error).message}`, { cause: err });
  }
  if (!rootStat.isDirectory()) throw new OciToolError('USAGE', `${root}: not a directory`);
  yield* walkDir(root, '', opts, []);
}

/** A folder being walked: its sorted names and how far the walk has got. */
interface Frame {
  abs: string;
  absPrefix: string;
  relPrefix: string;
  names: string[];
  next: number;
  /** The excluded folder this frame walks for what is kept below it (reinclude). */
  held?: TreeEntry;
}

function frameOf(abs: string, rel: string): Frame {
  let names: string[];
  try {
    names = readdirSync(abs);
  } catch (err) {
    throw new OciToolError('IO', `cannot read directory ${abs}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  }
  // ASCII names sort as strings (their code units are their bytes), without a comparator per pair.
  if (names.every((n) => ASCII.test(n))) names.sort();
  else names.sort(compareNames);
  // join(abs, n) for each name, without normalizing the same folder again each time.
  const normalized = join(abs, '/');
  return { abs, absPrefix: normalized === './' ? '' : normalized, relPrefix: rel === '' ? '' : `${rel}/`, names, next: 0 };
}

/**
 * The walk below `abs`, one folder frame per level on a stack (no generator per level: an entry
 * comes out in one step whatever its depth). `held`: excluded ancestor folders, yielded before the
 * first kept entry below them.
 */
function* walkDir(abs: string, rel: string, opts: WalkTreeOptions, held: TreeEntry[]): Generator<TreeEntry> {
  const stack: Frame[] = [frameOf(abs, rel)];
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.next === f.names.length) {
      stack.pop();
      if (f.held && held[held.length - 1] === f.held) held.pop(); // nothing below was kept
      continue;
    }
    const n = f.names[f.next++]!;
    let e: TreeEntry;
    try {
      e = statEntrySync(f.absPrefix + n, f.relPrefix + n);
    } catch (err) {
      throw new OciToolError('IO', `cannot read ${f.abs}: ${errno(err) ?? (err as Error).message}`, { cause: err });
    }
    if (opts.exclude?.(e.path, e.type === 'dir')) {
      if (e.type === 'dir' && opts.reinclude) {
        held.push(e);
        stack.push({ ...frameOf(e.abs, e.path), held: e });
      }
      continue;
    }
    if (held.length > 0) yield* held.splice(0);
    yield e;
    if (e.type === 'dir') stack.push(frameOf(e.abs, e.path));
  }
}
