/**
 * The layer cache (`build --app`'s dependency layer): a layer made once is reused while what goes
 * into it is unchanged, without reading or compressing its files again. An entry is keyed by a
 * fingerprint of the layer's inputs (metadata only: paths, types, modes, owners, sizes, mtimes,
 * link targets, plus a caller's key and every option that changes the bytes) and holds the layer's
 * descriptor, diffID and uncompressed size; the compressed blob is kept beside it and verified
 * while it streams into the next build. Anything damaged is a miss, said in one line, and rebuilt.
 *
 *   CACHE/layers/entries/FINGERPRINT.json   CACHE/layers/sha256/HEX
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { readCapped, type Store } from '../content/store.js';
import { VerifyingStream, digestOfStream } from '../digest/verify.js';
import { atomicWriteFile, holdTemp, tempName } from '../util/fs.js';
import { ocitoolVersion } from '../util/version.js';
import { walkTreeSync, statEntry, type TreeEntry, type WalkTreeOptions } from './walk.js';
import type { WrittenLayer } from './write.js';

/** What takes a blob to store with the image being written (ImageWriter.provide). */
export interface BlobProvider {
  provide(desc: { digest: string; size: number }, open: () => NodeJS.ReadableStream, what: string): void;
}

const ENTRY_MAX_BYTES = 64 * 1024;
const YIELD_EVERY = 1024;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The fingerprint of a layer packed from the tree `src` as `walk` sees it: `parts` (the caller's key
 * and options) and each walked entry's metadata (without directories' mtimes when `dirTimes` is
 * false). Stats the tree; never reads a file's contents. `signal` stops it (thrown at its next turn
 * of the event loop).
 */
export async function treeFingerprint(src: string, walk: WalkTreeOptions, parts: unknown[], opts: { dirTimes?: boolean; collect?: (e: TreeEntry) => void; signal?: AbortSignal } = {}): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(['ocitool layer cache 2', ocitoolVersion(), ...parts]));
  const dirTimes = opts.dirTimes ?? true;
  // Lines are hashed in batches: one update per ~64 KiB, not per entry. An entry is its ten fields,
  // each ended by a NUL (which no path or link target holds): unambiguous without escaping.
  let pending = '';
  const line = (e: TreeEntry): void => {
    pending += `${e.path}\0${e.type}\0${e.mode}\0${e.uid}\0${e.gid}\0${e.size}\0${e.type === 'dir' && !dirTimes ? 0 : e.mtimeMs}\0${e.linkTarget ?? ''}\0${e.inode ?? ''}\0${e.rdev ?? ''}\0`;
    if (pending.length >= 65536) {
      h.update(pending);
      pending = '';
    }
  };
  line(await statEntry(src, ''));
  // Synchronous, with a turn of the event loop every YIELD_EVERY entries: requests in flight (the
  // base image's manifest and config) go on meanwhile.
  let n = 0;
  for (const e of walkTreeSync(src, walk)) {
    line(e);
    opts.collect?.(e);
    if (++n % YIELD_EVERY === 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      opts.signal?.throwIfAborted();
    }
  }
  h.update(pending);
  return h.digest('hex');
}

/** A cache of layers in a folder; `use: false` (--no-cache) makes every lookup a miss but still stores. */
export class LayerCache {
  constructor(
    readonly dir: string,
    readonly opts: { use?: boolean; warn?: (message: string) => void } = {},
  ) {}

  private entryFile(fp: string): string {
    return join(this.dir, 'layers', 'entries', `${fp}.json`);
  }

  private blobFile(digest: string): string {
    return join(this.dir, 'layers', 'sha256', digest.slice('sha256:'.length));
  }

  /** The entry for `fp`, if there is a sound one; a damaged one is said, removed and a miss. */
  async lookup(fp: string): Promise<WrittenLayer | undefined> {
    if (this.opts.use === false) return undefined;
    const file = this.entryFile(fp);
    let bytes: Buffer;
    try {
      bytes = await readCapped(createReadStream(file), ENTRY_MAX_BYTES, file);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT') return undefined;
      return this.damaged(file, code === 'TOO_LARGE' ? `is larger than ${ENTRY_MAX_BYTES} bytes` : `cannot be read (${code ?? (err as Error).message})`);
    }
    let v: unknown;
    try {
      v = JSON.parse(bytes.toString('utf8'));
    } catch {
      return this.damaged(file, 'is not JSON');
    }
    const layer = entryShape(v, fp);
    return layer ?? this.damaged(file, 'does not have the shape of a cache entry');
  }

  private async damaged(file: string, why: string): Promise<undefined> {
    this.opts.warn?.(`layer cache: entry ${file} ${why}; building the layer again`);
    await unlink(file).catch(() => undefined);
    return undefined;
  }

  /**
   * Offers the cached layer `layer` to the image being written: nothing when the destination holds
   * the blob already; else its cached blob, checked whole here (a local read of the compressed bytes:
   * a damaged blob never starts an upload), goes to `writer`, whose graph copy stores it like a base
   * layer: mounted from another repository of the registry known to hold it, or streamed from the
   * cache file (verified on its way, reopened for a retry). Undefined, said in one line, when the
   * cached blob is missing or damaged: the caller builds the layer.
   */
  async reuse(fp: string, layer: WrittenLayer, dest: Store, writer: BlobProvider): Promise<WrittenLayer | undefined> {
    if (await dest.exists(layer.descriptor)) return layer;
    const file = this.blobFile(layer.descriptor.digest);
    try {
      await digestOfStream(createReadStream(file), new VerifyingStream(layer.descriptor, `cached layer ${file}`));
    } catch (err) {
      const fault = err as NodeJS.ErrnoException;
      const why = fault.code === 'ENOENT' ? 'is missing' : `is damaged (${fault.message})`;
      this.opts.warn?.(`layer cache: blob ${layer.descriptor.digest} ${why}; building the layer again`);
      await Promise.all([unlink(file), unlink(this.entryFile(fp))].map((p) => p.catch(() => undefined)));
      return undefined;
    }
    writer.provide(layer.descriptor, () => createReadStream(file, { highWaterMark: 1 << 20 }), `cached layer ${file}`);
    return layer;
  }

  /** A pass-through stage that keeps a copy of the compressed bytes for `store`. */
  tee(): CacheTee {
    return new CacheTee(join(this.dir, 'layers', 'sha256'));
  }

  /** Keeps `layer` under `fp`, its blob from `tee` once its digest is checked. A failure here is only said. */
  async store(fp: string, layer: WrittenLayer, tee: CacheTee): Promise<void> {
    try {
      const tmp = tee.finish();
      if (tmp === undefined) return;
      try {
        if (tee.digest !== layer.descriptor.digest || tee.size !== layer.descriptor.size) return;
        await rename(tmp, this.blobFile(layer.descriptor.digest));
      } finally {
        await unlink(tmp).catch(() => undefined);
        tee.release();
      }
      const entries = join(this.dir, 'layers', 'entries');
      await mkdir(entries, { recursive: true });
      const entry = { ocitoolLayerCache: 1, fingerprint: fp, descriptor: layer.descriptor, diffId: layer.diffId, uncompressedSize: layer.uncompressedSize };
      await atomicWriteFile(this.entryFile(fp), JSON.stringify(entry), entries);
    } catch (err) {
      this.opts.warn?.(`layer cache: cannot keep layer ${layer.descriptor.digest} in ${this.dir}: ${(err as Error).message}`);
    }
  }
}

/** A cache entry's layer, or undefined when `v` is not the entry of `fp` (one moved from another name is not). */
function entryShape(v: unknown, fp: string): WrittenLayer | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Record<string, unknown>;
  const d = e.descriptor as Record<string, unknown> | undefined;
  if (e.ocitoolLayerCache !== 1 || e.fingerprint !== fp || typeof d !== 'object' || d === null) return undefined;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof d.mediaType !== 'string' || typeof d.digest !== 'string' || !DIGEST.test(d.digest) || !count(d.size)) return undefined;
  if (typeof e.diffId !== 'string' || !DIGEST.test(e.diffId) || !count(e.uncompressedSize)) return undefined;
  return { descriptor: { mediaType: d.mediaType, digest: d.digest, size: d.size }, diffId: e.diffId, uncompressedSize: e.uncompressedSize };
}

/**
 * Hashes what passes and writes it to a temp file in `dir` (synchronous writes: the page cache
 * takes them at once). A write failure only stops the copy; the layer goes on.
 */
export class CacheTee extends Transform {
  private readonly hash = createHash('sha256');
  private fd?: number;
  private tmp?: string;
  private held?: () => void;
  private failed = false;
  size = 0;
  digest = '';

  constructor(private readonly dir: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    if (!this.failed) {
      try {
        if (this.fd === undefined) this.open();
        for (let off = 0; off < chunk.length; ) off += writeSync(this.fd!, chunk, off);
      } catch {
        this.stopCopy();
      }
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digest = `sha256:${this.hash.digest('hex')}`;
    cb();
  }

  private open(): void {
    mkdirSync(this.dir, { recursive: true });
    this.tmp = tempName(this.dir, 'layer');
    this.held = holdTemp(this.tmp);
    this.fd = openSync(this.tmp, 'wx', 0o644);
  }

  private stopCopy(): void {
    this.failed = true;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.tmp) {
      try {
        unlinkSync(this.tmp);
      } catch {
        /* already gone */
      }
    }
    this.release();
  }

  /** Closes the copy; its temp file when it is whole (the stream ended), else undefined. */
  finish(): string | undefined {
    if (this.failed || this.fd === undefined || this.digest === '') {
      this.discard();
      return undefined;
    }
    closeSync(this.fd);
    this.fd = undefined;
    return this.tmp;
  }

  /** Drops the copy (a failed or replaced attempt). */
  discard(): void {
    if (!this.failed) this.stopCopy();
  }

  release(): void {
    this.held?.();
    this.held = undefined;
  }
}
