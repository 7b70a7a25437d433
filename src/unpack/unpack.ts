/**
 * Unpacking an image into a root filesystem: its layers applied in order, each one streamed (verified
 * against its digest as it is read, against its diffID when it ends) through a tar reader into the
 * directory, with whiteouts, opaque directories, hardlinks and symlinks as the image-spec defines them.
 *
 * Safety (see paths.ts): nothing outside the directory is created, changed or removed. Entry names
 * that climb out are refused; symlinks are never followed by the kernel while writing (parents are
 * resolved by hand, inside the root); hardlink targets must be inside; whiteouts only remove inside;
 * device nodes are made only as root. A refused entry fails the unpack with one line naming the layer
 * and the entry (`onUnsafe: 'skip'` skips it with a warning instead).
 *
 * Ownership is applied when running as root (through --uid-map/--gid-map when given) and recorded
 * otherwise. Directory modes and times and extended attributes are applied at the end (late.ts),
 * through descriptors that never follow a link; what is queued for a path is dropped when the path
 * is removed or replaced. Every step costs the size of what it touches (a child index, never a scan
 * of everything unpacked so far). A filesystem error while applying an entry is one line naming the
 * layer and the entry.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough, pipeline as pipelineCb } from 'node:stream';
import { fetchBytes, type Fetcher, type Resolver } from '../content/store.js';
import { HashingStream } from '../digest/verify.js';
import { resolveImageManifest } from '../image/resolve.js';
import { decompressor, detectCompression, peek } from '../layer/compression.js';
import { checkImageConfig, parseJson } from '../spec/parse.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';
import { tempName } from '../util/fs.js';
import { applyLate, type DirMeta } from './late.js';
import { PathMap, RootResolver, UnsafeEntry, entryComponents, fsErrorText, parentOf } from './paths.js';
import { readTar, type TarHeader } from './tar-reader.js';

export interface IdMapping {
  container: number;
  host: number;
  size: number;
}

export interface UnpackOptions {
  /** From an index, the platform to unpack (default: this host's). */
  platform?: Platform;
  /** Container → host id ranges, as GrootFS and umoci take them (`CONTAINER:HOST:SIZE`). */
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** Do not apply ownership or make device nodes (default: when not running as root). */
  rootless?: boolean;
  /** What a refused entry does: fail the unpack (default) or skip it with a warning. */
  onUnsafe?: 'fail' | 'skip';
  /** Write the state file `repack` reads (default true). */
  state?: boolean;
  /** The image's reference, recorded in the state file for repack (absolute paths, please). */
  source?: string;
  warn?: (message: string) => void;
  /** Told when a layer starts. */
  onLayer?: (index: number, layer: Descriptor) => void;
  signal?: AbortSignal;
}

/** What unpack records of each path, for repack (and for ownership a rootless unpack could not apply). */
export interface StateEntry {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  sha256?: string;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string>;
}

export interface UnpackState {
  version: 1;
  /** Where the image came from (repack builds on it). */
  source?: string;
  /** Whether ownership was applied (else the recorded owners are the image's, not the files'). */
  rootless: boolean;
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** The image unpacked: its manifest and config. */
  manifest: Descriptor;
  config: Descriptor;
  /** Paths relative to the root filesystem (no leading slash); '' is the root itself. */
  entries: Record<string, StateEntry>;
}

export interface UnpackResult {
  manifest: Descriptor;
  layers: number;
  entries: number;
  /** Entries not created (refused with onUnsafe 'skip', devices when rootless), each as `LAYER: ENTRY: why`. */
  skipped: string[];
  /** Where the state file went (unless disabled). */
  stateFile?: string;
}

/** The state file of an unpacked root filesystem: a sibling of the directory. */
export const stateFileOf = (dir: string): string => `${dir.replace(/[\\/]+$/, '')}.ocitool-state.json`;

/** The highest id a map may reach, plus one: 4294967295 is (uid_t)-1, "no change" to chown. */
const ID_LIMIT = 0xffffffff;

/** Parses `CONTAINER:HOST:SIZE`; both ranges must stay within the 32-bit ids (below 4294967295). */
export function parseIdMapping(s: string, what: string): IdMapping {
  const m = /^(\d+):(\d+):(\d+)$/.exec(s);
  if (!m || Number(m[3]) < 1) throw new OciToolError('USAGE', `${what} ${s}: expected CONTAINER:HOST:SIZE (SIZE at least 1)`);
  const map = { container: Number(m[1]), host: Number(m[2]), size: Number(m[3]) };
  checkIdMapping(map, `${what} ${s}`);
  return map;
}

function checkIdMapping(m: IdMapping, what: string): void {
  const ok = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  if (!ok(m.container) || !ok(m.host) || !ok(m.size) || m.size < 1) throw new OciToolError('USAGE', `${what}: ids and size must be whole numbers, size at least 1`);
  if (m.container + m.size > ID_LIMIT || m.host + m.size > ID_LIMIT) throw new OciToolError('USAGE', `${what}: the range reaches past the highest id, ${ID_LIMIT - 1} (CONTAINER+SIZE and HOST+SIZE must be at most ${ID_LIMIT})`);
}

function mapId(id: number, maps: IdMapping[] | undefined, kind: string): number {
  if (!maps || maps.length === 0) return id;
  for (const m of maps) if (id >= m.container && id < m.container + m.size) return m.host + (id - m.container);
  throw new UnsafeEntry(`its ${kind} ${id} is not in the ${kind} map`);
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

/** Creates `dir` (and its parents), or says in one line why it cannot be: something else is there, say. */
export async function makeDirectory(dir: string, command: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'it, or a folder on its path, is not a directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message;
    throw new OciToolError('IO', `${command}: cannot make directory ${dir}: ${why}`);
  }
}

/**
 * An error met while applying an entry, as one line naming it (`where`); an ocitool error passes
 * through, and so does anything that is not a system call's failure.
 */
function entryFailure(err: unknown, where: string): unknown {
  if (err instanceof OciToolError) return err;
  const code = errno(err);
  if (code === undefined || !(/^E[A-Z0-9]+$/.test(code) || code === 'ERR_INVALID_ARG_VALUE')) return err;
  return new OciToolError('IO', `${where}: ${fsErrorText(err)}`, { cause: err });
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Unpacks the image `ref` names in `store` into `dir` (which must not exist or be empty). See the
 * module comment for the rules. `unpack` (image.ts) does the same from a reference.
 */
export async function unpackFrom(store: Fetcher & Resolver & { readonly name?: string }, ref: string | Descriptor, dir: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const name = store.name ?? 'image';
  const root = typeof ref === 'string' ? await store.resolve(ref) : ref;
  const { manifest } = await resolveImageManifest(store, root, { ...(opts.platform ? { platform: opts.platform } : {}), what: name });
  if (manifest.parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${name}: ${manifest.descriptor.digest} is not an image manifest`);
  const m = manifest.parsed.manifest;
  const config = checkImageConfig(parseJson(await fetchBytes(store, m.config), `config ${m.config.digest}`), `config ${m.config.digest}`);
  if (config.rootfs.diff_ids.length !== m.layers.length) throw new OciToolError('INVALID_MANIFEST', `${name}: ${m.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in config ${m.config.digest}`);

  for (const [what, maps] of [['uid map', opts.uidMap], ['gid map', opts.gidMap]] as const) for (const map of maps ?? []) checkIdMapping(map, `unpack: ${what} ${map.container}:${map.host}:${map.size}`);
  await makeDirectory(dir, 'unpack');
  if ((await readdir(dir)).length > 0) throw new OciToolError('USAGE', `unpack: ${dir} is not empty`);
  const rootless = opts.rootless ?? !isRoot();
  const onUnsafe = opts.onUnsafe ?? 'fail';
  const warn = opts.warn ?? ((): void => undefined);
  /** Everything this unpack made, by path relative to the root (the root itself not included). */
  const state = new PathMap<StateEntry>();
  const skipped: string[] = [];
  /** Directory modes and times, and extended attributes, applied at the end (late.ts), by relative path. */
  const dirMeta = new Map<string, DirMeta>();
  const xattrJobs = new Map<string, Map<string, Buffer>>();
  let entries = 0;
  /** What the current layer wrote (an opaque whiteout keeps it), and the directories it made opaque. */
  let writtenHere = new Set<string>();
  let opaqued = new Set<string>();

  const paths = new RootResolver(dir);
  const hostOf = (rel: string): string => (rel === '' ? dir : join(dir, rel));
  const created = (rel: string): void => {
    state.set(rel, { type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 });
    writtenHere.add(rel);
  };
  /**
   * Removes whatever is at `rel` (never following a symlink), with everything below it and all that
   * is queued for them. The tree holds only what this unpack made, all of it in `state`, so a path
   * not there needs no system call.
   */
  const clear = (rel: string): void => {
    const had = state.get(rel);
    if (!had) return;
    if (had.type === 'dir') {
      rmSync(hostOf(rel), { recursive: true, force: true });
      paths.forget(rel);
    } else unlinkSync(hostOf(rel));
    state.deleteTree(rel, (gone) => {
      dirMeta.delete(gone);
      xattrJobs.delete(gone);
      writtenHere.delete(gone);
    });
  };

  for (const [index, layer] of m.layers.entries()) {
    opts.signal?.throwIfAborted();
    opts.onLayer?.(index, layer);
    const layerName = `layer ${index + 1} (${layer.digest})`;
    writtenHere = new Set();
    opaqued = new Set();
    const want = config.rootfs.diff_ids[index]!;
    const blob = await store.fetch(layer, opts.signal ? { signal: opts.signal } : {});
    const kind = detectCompression(await peek(blob));
    const diff = new HashingStream('sha256');
    let failure: unknown;
    // A read-ahead buffer: decompression (on the thread pool) keeps going while entries are applied.
    const ahead = new PassThrough({ highWaterMark: 8 << 20 });
    const decoded = pipelineCb(blob, decompressor(kind), diff, ahead, (err) => {
      if (!err) return;
      const code = (err as { code?: unknown } | null)?.code;
      failure ??= typeof code === 'string' && code.startsWith('Z_') ? new OciToolError('DIGEST_MISMATCH', `${layerName}: not valid ${kind} data (${err.message})`) : err;
    });

    const refuse = async (entry: string, why: string, body: AsyncIterable<unknown>): Promise<void> => {
      const line = `${layerName}: entry ${JSON.stringify(entry)}: ${why}`;
      if (onUnsafe === 'fail') throw new OciToolError('UNSUPPORTED', `refused ${line}`);
      skipped.push(line);
      warn(`skipped ${line}`);
      await drain(body);
    };

    try {
      for await (const item of readTar(decoded as AsyncIterable<Buffer>, layerName)) {
        entries++;
        try {
          await applyEntry(item.header, item.body);
        } catch (err) {
          if (err instanceof UnsafeEntry) await refuse(item.header.name, err.message, item.body);
          else throw entryFailure(err, `${layerName}: entry ${JSON.stringify(item.header.name)}`);
        }
      }
      // The end-of-archive blocks and any padding: the diffID covers them too.
      for await (const _ of decoded) void _;
    } catch (err) {
      decoded.destroy();
      throw failure ?? err;
    }
    if (failure) throw failure;
    if (diff.digest !== want) throw new OciToolError('DIGEST_MISMATCH', `${layerName} of ${name} decompresses to ${diff.digest}, but config ${m.config.digest} says diff_id ${want}`);

    async function applyEntry(h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
      const parts = entryComponents(h.name);
      const base = parts.at(-1) ?? '';
      const type = h.type;
      if (parts.length === 0) {
        // The root itself ('./'): its mode and times, at the end.
        if (type === 'directory') dirMeta.set('', { mode: h.mode & 0o7777, mtime: h.mtime });
        return drain(body);
      }
      if (base === '.wh..wh..opq') {
        // Hides what lower layers put in the directory: once per directory and layer (a repeat finds
        // only what this layer wrote). What is there is what `state` lists: no readdir needed.
        const parent = parentOf(paths.resolve(parts, { created }));
        if (opaqued.has(parent)) return drain(body);
        opaqued.add(parent);
        for (const rel of state.children(parent)) if (!writtenHere.has(rel)) clear(rel);
        return drain(body);
      }
      if (base.startsWith('.wh.')) {
        const victim = base.slice(4);
        if (victim === '' || victim === '.' || victim === '..' || victim.includes('/')) throw new UnsafeEntry('a whiteout that names no entry');
        clear(paths.resolve([...parts.slice(0, -1), victim], { created }));
        return drain(body);
      }
      const rel = paths.resolve(parts, { created });
      const host = hostOf(rel);
      writtenHere.add(rel);
      const mode = h.mode & 0o7777;
      const mtime = h.mtime;
      const uid = mapId(h.uid, opts.uidMap, 'uid');
      const gid = mapId(h.gid, opts.gidMap, 'gid');
      const xattrs: Record<string, string> = Object.fromEntries([...h.xattrs].map(([k, v]) => [k, v.toString('base64')]));
      const record = (r: Omit<StateEntry, 'mode' | 'uid' | 'gid' | 'mtime'>): void => {
        state.set(rel, { ...r, mode, uid: h.uid, gid: h.gid, mtime, ...(h.xattrs.size ? { xattrs } : {}) });
        if (h.xattrs.size > 0 && type !== 'symlink') xattrJobs.set(rel, h.xattrs);
        else xattrJobs.delete(rel);
      };
      switch (type) {
        case 'directory': {
          const had = state.get(rel);
          if (had && had.type !== 'dir') clear(rel);
          if (!had || had.type !== 'dir') mkdirSync(host, { mode: 0o700 });
          paths.known(rel);
          if (!rootless) lchownSync(host, uid, gid);
          dirMeta.set(rel, { mode, mtime });
          record({ type: 'dir', size: 0 });
          return drain(body);
        }
        case 'file': {
          clear(rel);
          const fd = openSync(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          const hash = createHash('sha256');
          let size = 0;
          try {
            for await (const chunk of body) {
              hash.update(chunk);
              size += chunk.length;
              for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
            }
            if (!rootless) fchownSync(fd, uid, gid);
            fchmodSync(fd, mode);
            futimesSync(fd, mtime, mtime);
          } finally {
            closeSync(fd);
          }
          record({ type: 'file', size, sha256: `sha256:${hash.digest('hex')}` });
          return;
        }
        case 'symlink': {
          if (h.linkname.includes('\0')) throw new UnsafeEntry('a NUL byte in its link target');
          clear(rel);
          symlinkSync(h.linkname ?? '', host);
          if (!rootless) lchownSync(host, uid, gid);
          lutimesSync(host, mtime, mtime);
          record({ type: 'symlink', size: 0, linkname: h.linkname ?? '' });
          return drain(body);
        }
        case 'link': {
          const targetParts = entryComponents(h.linkname ?? '');
          if (targetParts.length === 0) throw new UnsafeEntry('a hardlink to the root directory');
          const missing = `its hardlink target ${JSON.stringify(h.linkname)} is not in the root filesystem`;
          let targetRel: string;
          try {
            targetRel = paths.resolve(targetParts, { create: false });
          } catch (err) {
            throw err instanceof UnsafeEntry ? new UnsafeEntry(missing) : err;
          }
          const t = state.get(targetRel);
          if (!t) throw new UnsafeEntry(missing);
          if (t.type === 'dir') throw new UnsafeEntry(`its hardlink target ${JSON.stringify(h.linkname)} is a directory`);
          if (targetRel !== rel) {
            clear(rel);
            linkSync(hostOf(targetRel), host);
          }
          // One inode: its attributes are the target's, and this entry's own when it has some.
          if (h.xattrs.size > 0) xattrJobs.set(rel, h.xattrs);
          else if (targetRel !== rel) xattrJobs.delete(rel);
          state.set(rel, { ...t });
          return drain(body);
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          const t = type === 'fifo' ? 'fifo' : type === 'character-device' ? 'char' : 'block';
          if (rootless && t !== 'fifo') {
            const line = `${layerName}: entry ${JSON.stringify(h.name)}: device nodes are made only as root`;
            skipped.push(line);
            warn(`skipped ${line}`);
            return drain(body);
          }
          clear(rel);
          const args = t === 'fifo' ? ['-m', mode.toString(8), host] : ['-m', mode.toString(8), host, t === 'char' ? 'c' : 'b', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
          const r = spawnSync(t === 'fifo' ? 'mkfifo' : 'mknod', args, { encoding: 'utf8' });
          if (r.status !== 0) throw new OciToolError('IO', `${layerName}: cannot make ${h.name}: ${(r.stderr || r.error?.message || '').trim()}`);
          if (!rootless) lchownSync(host, uid, gid);
          utimesSync(host, mtime, mtime);
          record({ type: t, size: 0, ...(t !== 'fifo' ? { devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0 } : {}) });
          return drain(body);
        }
        default:
          return drain(body);
      }
    }
  }

  applyLate(dir, dirMeta, xattrJobs, warn);
  let stateFile: string | undefined;
  if (opts.state ?? true) {
    stateFile = stateFileOf(dir);
    const doc: UnpackState = {
      version: 1,
      ...(opts.source !== undefined ? { source: opts.source } : {}),
      rootless,
      ...(opts.uidMap?.length ? { uidMap: opts.uidMap } : {}),
      ...(opts.gidMap?.length ? { gidMap: opts.gidMap } : {}),
      manifest: manifest.descriptor,
      config: m.config,
      entries: Object.fromEntries(state.entries()),
    };
    const tmp = tempName(dirname(stateFile), '.ocitool-state');
    await writeFile(tmp, JSON.stringify(doc));
    await rename(tmp, stateFile);
  }
  return { manifest: manifest.descriptor, layers: m.layers.length, entries, skipped, ...(stateFile ? { stateFile } : {}) };
}
