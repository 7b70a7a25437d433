/**
 * repack: one new layer on top of an unpacked image, made by diffing the root filesystem against
 * what unpack recorded (the state file: paths, types, modes, owners, sizes, content hashes), with the
 * build's diff engine, so neither root nor an mtree is needed. The result is the unpacked image with
 * that layer appended (and a history entry), written wherever REF says.
 */
import { digestOfStream } from '../digest/verify.js';
import { createReadStream } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { buildImage, registryImageName, type BuildResult } from '../image/build.js';
import type { DiffStats, LowerTree } from '../layer/diff.js';
import type { TreeEntry } from '../layer/walk.js';
import { compareNames, walkTree } from '../layer/walk.js';
import { absoluteReference, formatReference, parseReference, type ImageReference } from '../reference/transport.js';
import { tempName } from '../util/fs.js';
import type { Compression } from '../layer/compression.js';
import { openStore, writeTo } from '../transport/open.js';
import { destinationTag } from '../transport/copy.js';
import { OciToolError } from '../util/errors.js';
import { stateFileOf, type IdMapping, type StateEntry, type UnpackState } from './unpack.js';

/** The recorded tree as the lower side of a diff. */
export class StateTree implements LowerTree {
  private readonly children = new Map<string, string[]>();

  constructor(private readonly state: UnpackState) {
    for (const rel of Object.keys(state.entries)) {
      if (rel === '') continue;
      const cut = rel.lastIndexOf('/');
      const parent = cut < 0 ? '' : rel.slice(0, cut);
      const list = this.children.get(parent) ?? [];
      list.push(cut < 0 ? rel : rel.slice(cut + 1));
      this.children.set(parent, list);
    }
    for (const list of this.children.values()) list.sort(compareNames);
  }

  async names(rel: string): Promise<string[]> {
    return this.children.get(rel) ?? [];
  }

  entry(rel: string): StateEntry | undefined {
    return this.state.entries[rel];
  }

  async stat(rel: string): Promise<TreeEntry> {
    const e = this.state.entries[rel];
    if (!e) throw new OciToolError('INVALID_JSON', `state file: no entry for ${rel}`);
    const t: TreeEntry = { path: rel, abs: '', type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === 'file' ? e.size : 0, mtimeMs: e.mtime * 1000 };
    if (e.linkname !== undefined && e.type === 'symlink') t.linkTarget = e.linkname;
    if (e.type === 'char' || e.type === 'block') {
      const major = e.devmajor ?? 0;
      const minor = e.devminor ?? 0;
      t.rdev = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12);
    }
    return t;
  }

  async sameContent(rel: string, upper: TreeEntry): Promise<boolean> {
    const want = this.state.entries[rel]?.sha256;
    return want !== undefined && (await hashFile(upper.abs)) === want;
  }
}

/** The state of `dir` as it is now, for the image just written (content hashes reused where size and mtime agree). */
/** The base's registry image name, for its base.name annotation, when it has one. */
function withImageName(ref: ImageReference): { imageName?: string } {
  const imageName = registryImageName(ref);
  return imageName ? { imageName } : {};
}

async function refreshState(dir: string, old: UnpackState, view: (e: TreeEntry) => TreeEntry, source: string, result: BuildResult): Promise<UnpackState> {
  const entries: Record<string, StateEntry> = {};
  for await (const raw of walkTree(dir)) {
    const e = view(raw);
    const prev = old.entries[e.path];
    const rec: StateEntry = { type: e.type === 'socket' ? 'file' : e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtime: Math.floor(e.mtimeMs / 1000) };
    if (e.type === 'symlink') rec.linkname = e.linkTarget ?? '';
    if (e.type === 'file') {
      rec.sha256 = prev?.type === 'file' && prev.sha256 && prev.size === e.size && prev.mtime === rec.mtime ? prev.sha256 : await hashFile(e.abs);
    }
    if (e.type === 'char' || e.type === 'block') {
      const rdev = e.rdev ?? 0;
      rec.devmajor = Math.floor(rdev / 256) & 0xfff;
      rec.devminor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    }
    entries[e.path] = rec;
  }
  return { ...old, source, manifest: result.manifest, config: result.config, entries };
}

const hashFile = (path: string): Promise<string> => digestOfStream(createReadStream(path, { highWaterMark: 1 << 20 }));

async function writeState(file: string, state: UnpackState): Promise<void> {
  const tmp = tempName(dirname(file), '.ocitool-state');
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, file);
}

function unmap(id: number, maps: IdMapping[] | undefined): number {
  if (!maps || maps.length === 0) return id;
  for (const m of maps) if (id >= m.host && id < m.host + m.size) return m.container + (id - m.host);
  return id;
}

export interface RepackOptions {
  /** Seconds since the epoch for `created`, history and the mtime clamp (SOURCE_DATE_EPOCH). */
  created?: number;
  compression?: Compression;
  level?: number;
  insecure?: boolean;
  warn?: (message: string) => void;
  /** Stops the work (Ctrl-C): nothing is tagged, no temp file stays. */
  signal?: AbortSignal;
}

export interface RepackResult extends BuildResult {
  stats: DiffStats;
}

/** Appends the changes made to the unpacked root filesystem `dir` as one layer and writes the image to `dst`. */
export async function repack(dir: string, dst: string | ImageReference, opts: RepackOptions = {}): Promise<RepackResult> {
  const file = stateFileOf(dir);
  let state: UnpackState;
  try {
    state = JSON.parse(await readFile(file, 'utf8')) as UnpackState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new OciToolError('NOT_FOUND', `repack: ${dir} has no state file (${file}): unpack the image with ocitool unpack first`);
    throw new OciToolError('INVALID_JSON', `repack: ${file}: ${(err as Error).message}`);
  }
  if (state.version !== 1 || typeof state.entries !== 'object' || !state.source) throw new OciToolError('INVALID_JSON', `repack: ${file} is not a state file ocitool can use (no source image recorded)`);
  const lower = new StateTree(state);
  // Owners as the image sees them: a rootless unpack could not apply them, so the recorded ones stand
  // (new paths get 0:0); otherwise the files' owners, mapped back through the unpack's id maps.
  const view = (e: TreeEntry): TreeEntry => {
    if (state.rootless) {
      const had = lower.entry(e.path);
      return { ...e, uid: had?.uid ?? 0, gid: had?.gid ?? 0 };
    }
    return { ...e, uid: unmap(e.uid, state.uidMap), gid: unmap(e.gid, state.gidMap) };
  };
  const dstRef = typeof dst === 'string' ? parseReference(dst) : dst;
  const sourceRef = parseReference(state.source);
  const source = await openStore(sourceRef, { ...(opts.insecure ? { insecure: true } : {}) });
  try {
    // Straight into the destination (any store): the new layer streams in, the base's layers are
    // mounted, skipped, streamed or fetched by the copy that writes the image.
    const stats: DiffStats = { added: 0, changed: 0, deleted: 0, opaque: 0, unchanged: 0 };
    const tag = destinationTag(dstRef);
    const result = await writeTo(dstRef, { ...(opts.insecure ? { insecure: true } : {}) }, (to) =>
      buildImage({
        destination: to.store,
        ...(tag !== undefined ? { tag } : {}),
        base: { store: source.store, descriptor: state.manifest, name: state.source, ...withImageName(sourceRef) },
        layers: [{ kind: 'tree-diff', lower, upper: dir, view, stats, label: 'REPACK' }],
        ...(opts.created !== undefined ? { created: opts.created } : {}),
        ...(opts.compression ? { compression: opts.compression } : {}),
        ...(opts.level !== undefined ? { level: opts.level } : {}),
        ...(opts.warn ? { warn: opts.warn } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      }),
    );
    // The state now describes the new image, so that the next repack takes only what changes next.
    await writeState(file, await refreshState(dir, state, view, formatReference(absoluteReference(dstRef)), result));
    return { ...result, stats };
  } finally {
    await source.close?.();
  }
}
