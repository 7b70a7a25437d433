/**
 * The metadata unpack applies after the last layer: directory modes and times (last, so that a
 * read-only directory can still be written into by a later layer) and extended attributes (one
 * setfattr run per batch: Node has no xattr call).
 *
 * All of it goes through file descriptors, never through a path the kernel resolves: the root is
 * opened once, and each component below it is opened from its parent's descriptor
 * (`/proc/self/fd/N/NAME`, the openat of a language without one) with O_NOFOLLOW, directories with
 * O_DIRECTORY. A component that is no longer a directory, or has become a symlink, is skipped, so no
 * late call can follow a link out of the root, whatever the layers did after queueing it. setfattr is
 * handed the descriptors themselves (as its fds 3, 4, …) and given `/proc/self/fd/K` as paths: each
 * names exactly the inode opened, never a link's target.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fchmodSync, fstatSync, futimesSync, openSync } from 'node:fs';
import { OciToolError, errno } from '../util/errors.js';
import { fsErrorText } from './paths.js';

export interface DirMeta {
  mode: number;
  mtime: number;
}

/** Linux's O_PATH (Node does not export it): a descriptor that names an inode without opening it (no device is opened). */
const O_PATH = 0o10000000;
/** Descriptors handed to one setfattr run at most. */
const BATCH = 200;

interface Node {
  kids: Map<string, Node>;
  meta?: DirMeta;
  attrs?: Map<string, Buffer>;
}

/** `setfattr --restore` input (getfattr's dump format) for fds 3, 4, … of the setfattr process. */
function xattrDump(jobs: Map<string, Buffer>[]): string {
  const esc = (p: string): string => p.replace(/[\\\x00-\x1f\x7f=]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  let out = '';
  for (const [i, attrs] of jobs.entries()) {
    out += `# file: /proc/self/fd/${i + 3}\n`;
    for (const [k, v] of attrs) out += `${esc(k)}=0x${v.toString('hex')}\n`;
    out += '\n';
  }
  return out;
}

/**
 * Applies `dirMeta` and `xattrs` (by path relative to `root`, '' the root itself) as the module
 * comment says. What setfattr cannot set (security.* when not root, a filesystem without xattrs, no
 * setfattr at all) is one warning: the attributes stay recorded in the state file.
 */
export function applyLate(root: string, dirMeta: Map<string, DirMeta>, xattrs: Map<string, Map<string, Buffer>>, warn: (m: string) => void): void {
  if (dirMeta.size === 0 && xattrs.size === 0) return;
  const top: Node = { kids: new Map() };
  const at = (rel: string): Node => {
    let n = top;
    if (rel !== '')
      for (const c of rel.split('/')) {
        let k = n.kids.get(c);
        if (!k) n.kids.set(c, (k = { kids: new Map() }));
        n = k;
      }
    return n;
  };
  for (const [rel, meta] of dirMeta) at(rel).meta = meta;
  for (const [rel, attrs] of xattrs) at(rel).attrs = attrs;

  const pending: { fd: number; attrs: Map<string, Buffer> }[] = [];
  let failed = 0;
  let firstWhy = '';
  const flush = (): void => {
    if (pending.length === 0) return;
    const fds = pending.map((p) => p.fd);
    const r = spawnSync('setfattr', ['--restore=-'], { input: xattrDump(pending.map((p) => p.attrs)), stdio: ['pipe', 'pipe', 'pipe', ...fds], encoding: 'utf8' });
    for (const fd of fds) closeSync(fd);
    if (r.error || r.status !== 0) {
      failed += pending.length;
      firstWhy ||= r.error ? 'setfattr not found (apt-get install attr)' : (r.stderr || '').trim().split('\n')[0] ?? '';
    }
    pending.length = 0;
  };
  const fail = (rel: string, what: string, err: unknown): never => {
    throw new OciToolError('IO', `unpack: cannot ${what} ${rel === '' ? root : rel}: ${fsErrorText(err)}`, { cause: err });
  };

  /** Applies what is queued at and below `node`, whose directory `fd` is (it owns fd: closes it or hands it to setfattr). */
  const visit = (node: Node, fd: number, rel: string): void => {
    let handed = false;
    try {
      for (const [name, kid] of node.kids) {
        const kidRel = rel === '' ? name : `${rel}/${name}`;
        const dirWork = kid.meta !== undefined || kid.kids.size > 0;
        let kfd: number;
        try {
          kfd = openSync(`/proc/self/fd/${fd}/${name}`, (dirWork ? constants.O_RDONLY | constants.O_DIRECTORY : O_PATH) | constants.O_NOFOLLOW);
        } catch (err) {
          const code = errno(err);
          if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') continue; // no longer what it was: nothing to apply
          return fail(kidRel, 'open', err);
        }
        if (!dirWork && fstatSync(kfd).isSymbolicLink()) closeSync(kfd);
        else visit(kid, kfd, kidRel);
      }
      if (node.meta) {
        try {
          fchmodSync(fd, node.meta.mode);
          futimesSync(fd, node.meta.mtime, node.meta.mtime);
        } catch (err) {
          fail(rel, 'set the mode and times of', err);
        }
      }
      if (node.attrs) {
        pending.push({ fd, attrs: node.attrs }); // closed by the flush
        handed = true;
        if (pending.length >= BATCH) flush();
      }
    } finally {
      if (!handed && rel !== '') closeSync(fd);
      if (handed && rel === '') rootFd = -1;
    }
  };

  let rootFd = -1;
  try {
    rootFd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    fail('', 'open', err);
  }
  try {
    visit(top, rootFd, '');
    flush();
  } finally {
    for (const p of pending) closeSync(p.fd);
    if (rootFd >= 0) closeSync(rootFd);
  }
  if (failed > 0) warn(`extended attributes of ${failed} entries not applied (${firstWhy}); all are recorded in the state file`);
}
