import { posix } from 'node:path';
import { OciToolError } from '../util/errors.js';
import type { LayerEntry } from './tar.js';
import type { TreeEntry } from './walk.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** How tree entries become layer entries: owners, times and special files. */
export interface NormalizeOptions {
  /** Owner of every entry (default 0:0). */
  uid?: number;
  gid?: number;
  /** Keep each entry's own owner instead (repack: owners as the image records them). */
  keepOwners?: boolean;
  /** Clamp: an mtime later than this (seconds) becomes this (SOURCE_DATE_EPOCH). */
  mtimeClamp?: number;
  /**
   * Directories get this mtime (seconds) instead of their own: for a layer whose directories hold a
   * selection of what is on disk (the dependency layer of `build --app`), a directory's mtime tells
   * of entries the layer leaves out (node_modules/.cache, a new file beside node_modules) and would
   * change the layer's bytes for nothing.
   */
  dirMtime?: number;
  /** Keep device nodes and fifos (default: only when running as root). Sockets are always skipped. */
  allowSpecial?: boolean;
  warn?: (message: string) => void;
}

export function clampTime(mtimeMs: number, clamp: number | undefined): number {
  const s = Math.floor(mtimeMs / 1000);
  return clamp !== undefined && s > clamp ? clamp : Math.max(0, s);
}

/** Normalises an archive path: no leading '/' or './', no '..', no trailing '/'. */
export function archivePath(dest: string, rel: string): string {
  const joined = posix.normalize(posix.join('/', dest, rel));
  return joined.replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * Turns a stream of tree entries into layer entries: archive names under `dest`, owners and times
 * normalised, later links to an inode already packed written as hardlinks, sockets skipped (and
 * devices and fifos unless allowed), names that look like whiteouts refused.
 */
export class EntryConverter {
  private readonly inodes = new Map<string, string>();
  private readonly uid: number;
  private readonly gid: number;
  private readonly allowSpecial: boolean;

  constructor(private readonly opts: NormalizeOptions = {}) {
    this.uid = opts.uid ?? 0;
    this.gid = opts.gid ?? 0;
    this.allowSpecial = opts.allowSpecial ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  }

  get mtimeClamp(): number | undefined {
    return this.opts.mtimeClamp;
  }

  /** A directory entry for a parent of `dest` that the tree does not provide. */
  parentDir(name: string): LayerEntry {
    return { name, type: 'dir', mode: 0o755, uid: this.uid, gid: this.gid, mtime: this.opts.mtimeClamp ?? 0 };
  }

  /** A whiteout (`.wh.NAME`) or opaque whiteout entry. */
  whiteout(name: string): LayerEntry {
    return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: this.opts.mtimeClamp ?? 0, size: 0, content: Buffer.alloc(0) };
  }

  convert(e: TreeEntry, name: string): LayerEntry | undefined {
    const base = posix.basename(name);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      throw new OciToolError('UNSUPPORTED', `${e.abs}: a file named ${WHITEOUT_PREFIX}* cannot be put in a layer (it would read as a whiteout)`);
    }
    const common = { name, mode: e.mode, uid: this.opts.keepOwners ? e.uid : this.uid, gid: this.opts.keepOwners ? e.gid : this.gid, mtime: clampTime(e.mtimeMs, this.opts.mtimeClamp) };
    switch (e.type) {
      case 'dir':
        return { ...common, type: 'dir', ...(this.opts.dirMtime !== undefined ? { mtime: this.opts.dirMtime } : {}) };
      case 'symlink':
        return { ...common, type: 'symlink', linkname: e.linkTarget ?? '' };
      case 'file': {
        if (e.inode !== undefined) {
          const first = this.inodes.get(e.inode);
          if (first !== undefined) return { ...common, type: 'hardlink', linkname: first };
          this.inodes.set(e.inode, name);
        }
        return { ...common, type: 'file', size: e.size, source: e.abs };
      }
      case 'socket':
        this.opts.warn?.(`skipping socket ${e.abs}`);
        return undefined;
      case 'char':
      case 'block':
      case 'fifo': {
        if (!this.allowSpecial) {
          this.opts.warn?.(`skipping ${e.type === 'fifo' ? 'fifo' : 'device'} ${e.abs} (only root may pack devices and fifos)`);
          return undefined;
        }
        const rdev = e.rdev ?? 0;
        return { ...common, type: e.type, devmajor: Math.floor(rdev / 256) & 0xfff, devminor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
      }
    }
  }
}
