/**
 * Pass 1 of flatten and export: the layers' headers applied in order to a map of paths, as unpack
 * applies them to a directory (same name normalisation, parents resolved through the image's own
 * symlinks, whiteouts and opaque directories, hardlinks to what is there at that moment), with no
 * file data kept. The result is a plan keyed by entry position (entries counted across all layers,
 * whiteouts included), which pass 2 (flatten-tar.ts) follows while it reads the layers again:
 * - a surviving file, symlink, device or fifo is written where its entry is, its data streamed;
 * - hardlinks that survive are written as links to the first path of their inode that is written;
 *   when the entry that made the inode is gone (replaced or removed later), its data is written at
 *   the first surviving link instead, where that entry is;
 * - a directory is written once, with its last metadata, at its first entry or before anything
 *   under it (whichever comes first); directories made only as parents come out mode 0755, 0:0;
 * - whiteouts never appear.
 * Memory is the map of surviving paths, bounded (FlattenLimits).
 */
import { PathMap, UnsafeEntry, entryComponents, parentOf, resolveParents, type Found } from '../unpack/paths.js';
import type { TarHeader } from '../unpack/tar-reader.js';
import { OciToolError } from '../util/errors.js';

export interface FlattenLimits {
  /** Most paths the flattened filesystem may hold (default 4 000 000). */
  paths: number;
  /** Most bytes of path names and symlink targets held (default 512 MiB). */
  bytes: number;
}

export const DEFAULT_LIMITS: FlattenLimits = { paths: 4_000_000, bytes: 512 * 1024 * 1024 };

type Rec =
  /** A directory: the last header seen for it (none: made as a parent), and its first entry's position. */
  | { dir: true; header: TarHeader | undefined; first: number }
  /** Anything else: the entry that put it here, the entry that made its inode, a symlink's target. */
  | { dir: false; at: number; inode: number; link: string | undefined };

export type Action =
  | { kind: 'dir'; name: string }
  /** Write this entry (a file, symlink, device or fifo), data and all, as `name`. */
  | { kind: 'content'; name: string }
  /** Write a hardlink `name` → `target`. */
  | { kind: 'link'; name: string; target: string };

export interface FlattenPlan {
  /** What to write at each entry position. */
  actions: Map<number, Action>;
  /** Every surviving directory: its final header (undefined: made as a parent). */
  dirs: Map<string, TarHeader | undefined>;
  /** The root's own entry (`./`), the last one seen. */
  root: TarHeader | undefined;
  /** Entries read, whiteouts included. */
  entries: number;
}

const DIR: Found = { kind: 'dir' };
const MISSING: Found = { kind: 'missing' };
const OTHER: Found = { kind: 'other' };

/** Applies layers' headers in order; `plan()` then gives what pass 2 needs. */
export class FlattenPlanner {
  private readonly map = new PathMap<Rec>();
  private bytes = 0;
  private pos = 0;
  private root: TarHeader | undefined;
  private writtenHere = new Set<string>();
  private opaqued = new Set<string>();
  private layer = '';

  constructor(private readonly limits: FlattenLimits = DEFAULT_LIMITS) {}

  /** Starts the next layer (`name` names it in messages). */
  startLayer(name: string): void {
    this.layer = name;
    this.writtenHere = new Set();
    this.opaqued = new Set();
  }

  /** Applies one entry's header. */
  add(h: TarHeader): void {
    const pos = this.pos++;
    try {
      this.apply(h, pos);
    } catch (err) {
      if (err instanceof UnsafeEntry) throw new OciToolError('UNSUPPORTED', `refused ${this.layer}: entry ${JSON.stringify(h.name)}: ${err.message}`);
      throw err;
    }
  }

  private apply(h: TarHeader, pos: number): void {
    const parts = entryComponents(h.name);
    const base = parts.at(-1) ?? '';
    if (parts.length === 0) {
      if (h.type === 'directory') this.root = h;
      return;
    }
    if (base === '.wh..wh..opq') {
      const parent = parentOf(this.resolve(parts, true));
      if (this.opaqued.has(parent)) return;
      this.opaqued.add(parent);
      for (const rel of this.map.children(parent)) if (!this.writtenHere.has(rel)) this.remove(rel);
      return;
    }
    if (base.startsWith('.wh.')) {
      const victim = base.slice(4);
      if (victim === '' || victim === '.' || victim === '..' || victim.includes('/')) throw new UnsafeEntry('a whiteout that names no entry');
      this.remove(this.resolve([...parts.slice(0, -1), victim], true));
      return;
    }
    const rel = this.resolve(parts, true);
    this.writtenHere.add(rel);
    const had = this.map.get(rel);
    switch (h.type) {
      case 'directory':
        if (had?.dir) {
          had.header = h;
          if (had.first < 0) had.first = pos;
          return;
        }
        this.remove(rel);
        return this.put(rel, { dir: true, header: h, first: pos });
      case 'file':
      case 'character-device':
      case 'block-device':
      case 'fifo':
        this.remove(rel);
        return this.put(rel, { dir: false, at: pos, inode: pos, link: undefined });
      case 'symlink':
        if (h.linkname.includes('\0')) throw new UnsafeEntry('a NUL byte in its link target');
        this.remove(rel);
        return this.put(rel, { dir: false, at: pos, inode: pos, link: h.linkname });
      case 'link': {
        const targetParts = entryComponents(h.linkname);
        if (targetParts.length === 0) throw new UnsafeEntry('a hardlink to the root directory');
        const missing = `its hardlink target ${JSON.stringify(h.linkname)} is not in the root filesystem`;
        let targetRel: string;
        try {
          targetRel = this.resolve(targetParts, false);
        } catch (err) {
          throw err instanceof UnsafeEntry ? new UnsafeEntry(missing) : err;
        }
        const t = this.map.get(targetRel);
        if (!t) throw new UnsafeEntry(missing);
        if (t.dir) throw new UnsafeEntry(`its hardlink target ${JSON.stringify(h.linkname)} is a directory`);
        if (targetRel === rel) return;
        this.remove(rel);
        return this.put(rel, { dir: false, at: pos, inode: t.inode, link: t.link });
      }
      default:
        return; // other types are skipped, as unpack does
    }
  }

  private put(rel: string, rec: Rec): void {
    this.map.set(rel, rec);
    this.bytes += rel.length + (!rec.dir && rec.link ? rec.link.length : 0);
    if (this.map.size > this.limits.paths) throw new OciToolError('TOO_LARGE', `${this.layer}: the flattened filesystem would hold more than ${this.limits.paths} paths`);
    if (this.bytes > this.limits.bytes) throw new OciToolError('TOO_LARGE', `${this.layer}: the flattened filesystem's names would take more than ${this.limits.bytes} bytes`);
  }

  /** Removes `rel` and everything below it. */
  private remove(rel: string): void {
    if (!this.map.has(rel)) return;
    const stack = [rel];
    while (stack.length > 0) {
      const p = stack.pop()!;
      const rec = this.map.get(p);
      if (rec) this.bytes -= p.length + (!rec.dir && rec.link ? rec.link.length : 0);
      this.writtenHere.delete(p);
      if (rec?.dir) stack.push(...this.map.children(p));
    }
    this.map.deleteTree(rel);
  }

  /**
   * The entry's path with its parents resolved inside the map, as RootResolver resolves them on disk
   * (symlinks followed by hand, absolute targets from the root, none climbing out); missing parents
   * are made (or, with `create` false, refused). The last component is not resolved.
   */
  private resolve(parts: string[], create: boolean): string {
    const parentKey = parts.slice(0, -1).join('/');
    // Every ancestor of a path in the map is a directory in it: no symlink on the way.
    if (parentKey === '' || this.map.get(parentKey)?.dir) return parts.join('/');
    const look = (rel: string): Found => {
      const rec = this.map.get(rel);
      return !rec ? MISSING : rec.dir ? DIR : rec.link !== undefined ? { kind: 'symlink', target: rec.link } : OTHER;
    };
    return resolveParents(parts, look, (rel) => {
      if (!create) throw new UnsafeEntry(`${rel} does not exist in the root filesystem`);
      this.put(rel, { dir: true, header: undefined, first: -1 });
      this.writtenHere.add(rel);
    });
  }

  /** What pass 2 writes where (see the module comment); the map is given up. */
  plan(): FlattenPlan {
    const actions = new Map<number, Action>();
    const dirs = new Map<string, TarHeader | undefined>();
    const inodes = new Map<number, string[]>();
    for (const [rel, rec] of this.map.entries()) {
      if (rec.dir) {
        dirs.set(rel, rec.header);
        if (rec.first >= 0) actions.set(rec.first, { kind: 'dir', name: rel });
        continue;
      }
      const paths = inodes.get(rec.inode);
      if (paths) paths.push(rel);
      else inodes.set(rec.inode, [rel]);
    }
    for (const [inode, paths] of inodes) {
      // The inode's own entry when it survives, else the link written first.
      const at = (p: string): number => (this.map.get(p) as Extract<Rec, { dir: false }>).at;
      let primary = paths[0]!;
      for (const p of paths) if (at(p) < at(primary)) primary = p;
      actions.set(inode, { kind: 'content', name: primary });
      for (const p of paths) if (p !== primary) actions.set(at(p), { kind: 'link', name: p, target: primary });
    }
    return { actions, dirs, root: this.root, entries: this.pos };
  }
}
