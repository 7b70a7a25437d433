import { link, lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineCb } from 'node:stream';
import { markReopenable } from '../content/reopen.js';
import { digestOf, hashAlgorithmOf, isValidDigest, parseDigest } from '../digest/digest.js';
import { HashingStream, VerifyingStream, isVerifiedFor } from '../digest/verify.js';
import type { Collectable, PushStreamOptions, Store, StreamPusher } from '../content/store.js';
import { fetchBytes } from '../content/store.js';
import { MediaType, isManifestType } from '../spec/media-types.js';
import { MAX_JSON_BYTES, checkIndex, detectManifestType, parseJson } from '../spec/parse.js';
import { Annotation, type Descriptor, type ImageIndex, type OciLayoutHeader } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';
import { abortWith, atomicWriteFile, fileHandleWriter, holdTemp, isTempName, tempName } from '../util/fs.js';
import { kindOf, openRegular, readRegularFile } from './files.js';
import { LeaseFile } from './lease.js';
import { withFileLock } from './lock.js';

export const LAYOUT_VERSION = '1.0.0';
/** ocitool's private folder inside a layout: temp files and the index lock. Other tools ignore it. */
export const PRIVATE_DIR = '.ocitool';

/** A writer's hold on what it stores until it has tagged it (see lease.ts); release it after the tag. */
export interface Lease {
  /** Holds a blob (with what it refers to, for a manifest) that is stored, or about to be, by anyone. */
  hold(desc: Pick<Descriptor, 'digest' | 'mediaType'>): Promise<void>;
  release(): Promise<void>;
}

export interface PutResult {
  digest: string;
  size: number;
}

export interface LayoutOptions {
  /** fsync blobs before renaming them into place (default true). */
  sync?: boolean;
}

/**
 * An OCI image layout on disk. Blobs are written to a temp file inside the layout while hashed,
 * verified, synced and renamed into place, so a blob is never visible half-written or under a wrong
 * name. `index.json` is rewritten atomically under a lock, so concurrent writers lose no tag.
 */
export class OciLayout implements Store, Collectable, StreamPusher {
  readonly dir: string;
  readonly name: string;
  private readonly sync: boolean;
  private leaseState: { file: Promise<LeaseFile>; refs: number } | undefined;

  private constructor(dir: string, opts: LayoutOptions) {
    this.dir = resolvePath(dir);
    this.name = `oci:${dir}`;
    this.sync = opts.sync ?? true;
  }

  /** Creates a layout (or opens an existing one). Refuses a non-empty directory that is not a layout. */
  static async init(dir: string, opts: LayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, opts);
    let entries: string[] = [];
    try {
      entries = await readdir(layout.dir);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw ioError(`cannot read ${dir}`, err);
    }
    if (entries.includes('oci-layout')) {
      // A writer killed during init may have left oci-layout without index.json: finish the job.
      if (!entries.includes('index.json')) await layout.createEmptyIndex();
      return OciLayout.open(dir, opts);
    }
    if (entries.length > 0 && !(entries.length <= 3 && entries.every((e) => ['blobs', 'index.json', PRIVATE_DIR].includes(e)))) {
      throw new OciToolError('INVALID_LAYOUT', `${dir}: directory is not empty and is not an OCI layout (no oci-layout file)`);
    }
    // oci-layout goes last: its presence says the layout is complete.
    await layout.confined();
    await mkdir(join(layout.dir, 'blobs', 'sha256'), { recursive: true });
    if (!entries.includes('index.json')) await layout.createEmptyIndex();
    const header: OciLayoutHeader = { imageLayoutVersion: LAYOUT_VERSION };
    await atomicWriteFile(join(layout.dir, 'oci-layout'), JSON.stringify(header), layout.tmpDir);
    return layout;
  }

  /**
   * Writes an empty index.json unless there is one: linked into place, which never replaces a file, so
   * that an init racing another writer (that has initialised and tagged since) loses nothing.
   */
  private async createEmptyIndex(): Promise<void> {
    await this.confined();
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = tempName(this.tmpDir, 'write');
    const release = holdTemp(tmp);
    try {
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] } satisfies ImageIndex));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await link(tmp, this.indexPath);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw ioError(`cannot write ${this.indexPath}`, err);
    } finally {
      await unlink(tmp).catch(() => undefined);
      release();
    }
  }

  /** Opens an existing layout, checking `oci-layout` and that `index.json` parses. */
  static async open(dir: string, opts: LayoutOptions = {}): Promise<OciLayout> {
    const layout = new OciLayout(dir, opts);
    const notLayout = (): OciToolError => new OciToolError('NOT_FOUND', `${dir}: not an OCI layout (no oci-layout file)`);
    let raw: Buffer;
    try {
      raw = await readRegularFile(join(layout.dir, 'oci-layout'), MAX_JSON_BYTES, `${dir}/oci-layout`, { missing: notLayout });
    } catch (err) {
      if (errno((err as Error).cause) === 'ENOTDIR') throw notLayout();
      throw err;
    }
    const header = parseJson(raw, `${dir}/oci-layout`) as Partial<OciLayoutHeader> | null;
    if (typeof header !== 'object' || header === null || typeof header.imageLayoutVersion !== 'string') {
      throw new OciToolError('INVALID_LAYOUT', `${dir}/oci-layout: no imageLayoutVersion`);
    }
    if (!header.imageLayoutVersion.startsWith('1.')) {
      throw new OciToolError('UNSUPPORTED', `${dir}/oci-layout: unsupported imageLayoutVersion ${header.imageLayoutVersion}`);
    }
    await layout.readIndex();
    return layout;
  }

  /**
   * The first of the layout's own folders (`blobs`, `blobs/ALG`, the private folder and its `tmp` and
   * `leases`) that is a symbolic link or not a folder, and why; undefined when all are as they should
   * be (or absent). Writers and gc refuse such a layout: through a link they would write or delete
   * outside it.
   */
  async linkedFolder(): Promise<{ rel: string; why: string } | undefined> {
    const check = async (rel: string): Promise<{ rel: string; why: string } | undefined | 'dir'> => {
      const s = await lstat(join(this.dir, rel)).catch(() => undefined);
      if (s === undefined) return undefined;
      if (s.isSymbolicLink()) return { rel, why: 'is a symbolic link' };
      if (!s.isDirectory()) return { rel, why: 'is not a directory' };
      return 'dir';
    };
    const blobs = await check('blobs');
    if (blobs === 'dir') {
      for (const alg of await readdir(join(this.dir, 'blobs'))) {
        const r = await check(`blobs/${alg}`);
        if (r !== 'dir' && r !== undefined) return r;
      }
    } else if (blobs) return blobs;
    for (const rel of [PRIVATE_DIR, `${PRIVATE_DIR}/tmp`, `${PRIVATE_DIR}/leases`]) {
      const r = await check(rel);
      if (r !== 'dir' && r !== undefined) return r;
    }
    return undefined;
  }

  private confinedCheck?: Promise<void>;

  /** Refuses (once per layout object) to write into a layout whose own folders are links. */
  private confined(): Promise<void> {
    this.confinedCheck ??= this.linkedFolder().then((bad) => {
      if (bad) throw new OciToolError('INVALID_LAYOUT', `${this.name}: ${bad.rel} ${bad.why}: ocitool writes only inside the layout`);
    });
    return this.confinedCheck;
  }

  get indexPath(): string {
    return join(this.dir, 'index.json');
  }

  /** The private folder for temp files (gc removes stale ones). */
  get tmpDir(): string {
    return join(this.dir, PRIVATE_DIR, 'tmp');
  }

  /** The private folder for writers' leases (see lease.ts). */
  get leaseDir(): string {
    return join(this.dir, PRIVATE_DIR, 'leases');
  }

  /** Path of a blob on disk (the digest is validated first, so it cannot escape `blobs/`). */
  blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, encoded);
  }

  /** Size of a stored blob, or undefined when absent (or not a regular file: a FIFO, a link). */
  async stat(digest: string): Promise<number | undefined> {
    try {
      const s = await lstat(this.blobPath(digest));
      return s.isFile() ? s.size : undefined;
    } catch (err) {
      if (errno(err) === 'ENOENT') return undefined;
      throw ioError(`cannot stat blob ${digest} in ${this.name}`, err);
    }
  }

  /** The same as stat: a stored blob's size (what conversions ask a source for). */
  blobSize(digest: string): Promise<number | undefined> {
    return this.stat(digest);
  }

  /** Whether the blob is stored. Under a lease the digest is recorded first: a writer may rely on it. */
  async exists(desc: Pick<Descriptor, 'digest' | 'size'> & { mediaType?: string }): Promise<boolean> {
    await this.record(desc.digest, desc.mediaType);
    const size = await this.stat(desc.digest);
    return size !== undefined && (desc.size < 0 || size === desc.size);
  }

  /** The blob's bytes, verified against `desc` as they are read; `signal` destroys the stream (and closes the file). */
  async fetch(desc: Descriptor, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    opts.signal?.throwIfAborted();
    const missing = (): OciToolError => new OciToolError('NOT_FOUND', `blob ${desc.digest} not found in ${this.name}`);
    const { fh } = await openRegular(this.blobPath(desc.digest), `blob ${desc.digest} in ${this.name}`, { noFollow: true, missing });
    if (opts.signal?.aborted) {
      await fh.close();
      opts.signal.throwIfAborted();
    }
    const src = fh.createReadStream({ highWaterMark: 1 << 20 });
    const verifier = new VerifyingStream(desc, `blob ${desc.digest} in ${this.name}`);
    const out = pipelineCb(src, verifier, () => undefined);
    // Reopenable: an upload of it that broke mid-way resumes instead of starting over.
    return markReopenable(opts.signal ? abortWith(opts.signal, out) : out, () => this.fetch(desc, opts));
  }

  /** A whole small blob (manifest, config), verified. */
  async fetchBytes(desc: Descriptor, cap?: number): Promise<Buffer> {
    return fetchBytes(this, desc, cap);
  }

  /** Stores a blob that must match `desc`. A blob already present is not rewritten. */
  async push(desc: Descriptor, content: Readable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.putBlob(content, desc, opts);
  }

  /**
   * Streams `content` into the layout. With `expected`, the bytes must match it (else nothing is
   * stored); without, the digest is computed (sha256). Returns the stored digest and size. When
   * `signal` aborts, the copy stops, the temp file goes, nothing is stored and its reason is thrown.
   */
  async putBlob(content: Readable, expected?: { digest: string; size: number; mediaType?: string }, opts: PushStreamOptions = {}): Promise<PutResult> {
    const { signal } = opts;
    const stop = (): void => {
      if (signal?.aborted) {
        content.destroy();
        throw signal.reason;
      }
    };
    stop();
    if (expected !== undefined) {
      hashAlgorithmOf(expected.digest);
      if (await this.exists(expected)) {
        content.destroy();
        return { digest: expected.digest, size: await this.statOrThrow(expected.digest) };
      }
    }
    await this.confined();
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = tempName(this.tmpDir, 'blob');
    const release = holdTemp(tmp);
    // A stream already verified for this digest (a registry or layout fetch) is not hashed twice.
    const trusted = expected !== undefined && isVerifiedFor(content, expected.digest);
    const check: Transform = expected ? new VerifyingStream(expected, `blob ${expected.digest}`) : new HashingStream('sha256');
    const pipe = signal ? { signal } : {};
    try {
      stop();
      const fh = await open(tmp, 'wx', 0o644);
      try {
        if (trusted) await pipeline(content, fileHandleWriter(fh, this.sync), pipe);
        else await pipeline(content, check, fileHandleWriter(fh, this.sync), pipe);
      } finally {
        await fh.close();
      }
      stop();
      const digest = expected?.digest ?? (check as HashingStream).digest;
      const size = expected ? expected.size : (check as HashingStream).size;
      opts.check?.({ digest, size });
      const dest = this.blobPath(digest);
      await this.record(digest, expected?.mediaType); // before the blob is visible: gc may be sweeping
      await mkdir(join(this.dir, 'blobs', digest.slice(0, digest.indexOf(':'))), { recursive: true });
      stop();
      await rename(tmp, dest);
      return { digest, size: size >= 0 ? size : await this.statOrThrow(digest) };
    } catch (err) {
      content.destroy();
      await unlink(tmp).catch(() => undefined);
      // Interrupted: the reason, not the stream's AbortError or a half-read's error.
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      release();
    }
  }

  /** A stream of unknown digest, named by the digest it hashes to (StreamPusher). */
  async pushStream(content: Readable, opts: PushStreamOptions = {}): Promise<PutResult> {
    return this.putBlob(content, undefined, opts);
  }

  /** Stores a small in-memory blob and returns its descriptor. */
  async putBytes(data: Uint8Array | string, mediaType: string): Promise<Descriptor> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const desc: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
    await this.putBlob(Readable.from([Buffer.from(bytes)]), desc);
    return desc;
  }

  async deleteBlob(digest: string): Promise<void> {
    try {
      await unlink(this.blobPath(digest));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw ioError(`cannot delete blob ${digest} from ${this.name}`, err);
    }
  }

  /** Every regular file under `blobs/` whose path is a valid digest. Others are reported by verify. */
  async *listBlobs(): AsyncIterable<{ digest: string; size: number }> {
    for (const entry of await this.listBlobFiles()) {
      if (entry.digest !== undefined && entry.problem === undefined) yield { digest: entry.digest, size: entry.size };
    }
  }

  /**
   * Every entry under `blobs/`, looked at with lstat (nothing is followed): its digest when the path
   * forms a valid one, and what is wrong with it, if anything (not a regular file, a badly named file,
   * a linked folder, whose content is not listed).
   */
  async listBlobFiles(): Promise<{ path: string; digest?: string; size: number; problem?: string }[]> {
    const out: { path: string; digest?: string; size: number; problem?: string }[] = [];
    const blobs = join(this.dir, 'blobs');
    const linked = await lstat(blobs).catch(() => undefined);
    if (linked?.isSymbolicLink()) return [{ path: 'blobs', size: 0, problem: 'is a symbolic link (blobs must live in the layout)' }];
    let algs: string[];
    try {
      algs = (await readdir(blobs)).sort();
    } catch (err) {
      if (errno(err) === 'ENOENT') return out;
      throw ioError(`cannot list ${blobs}`, err);
    }
    for (const alg of algs) {
      const a = await lstat(join(blobs, alg));
      if (!a.isDirectory()) {
        out.push({ path: `blobs/${alg}`, size: 0, problem: a.isSymbolicLink() ? 'is a symbolic link (blobs must live in the layout)' : 'is not a folder of blobs' });
        continue;
      }
      for (const name of (await readdir(join(blobs, alg))).sort()) {
        const s = await lstat(join(blobs, alg, name)).catch(() => undefined);
        if (s === undefined) continue; // removed since
        const digest = `${alg}:${name}`;
        const valid = isValidDigest(digest);
        const problem = !s.isFile() ? `is ${kindOf(s)}, not a regular file` : valid ? undefined : 'is not a blob named by a valid digest';
        out.push({ path: `blobs/${alg}/${name}`, size: s.size, ...(valid ? { digest } : {}), ...(problem ? { problem } : {}) });
      }
    }
    return out;
  }

  /** Reads and checks `index.json`. */
  async readIndex(): Promise<ImageIndex> {
    const missing = (): OciToolError => new OciToolError('INVALID_LAYOUT', `${this.dir}: no index.json`);
    const raw = await readRegularFile(this.indexPath, MAX_JSON_BYTES, this.indexPath, { missing });
    return checkIndex(parseJson(raw, this.indexPath), this.indexPath);
  }

  /**
   * Every change to `index.json` goes through here: a read-modify-write under the layout's lock. Reads
   * the current index, lets `change` edit it (or return a new one; it may read and store blobs while
   * the lock is held, but should be quick), and replaces the file atomically. Returns the index written.
   */
  async updateIndex(change: (index: ImageIndex) => ImageIndex | void | Promise<ImageIndex | void>): Promise<ImageIndex> {
    return this.withIndexLock(() => this.replaceIndexLocked(change));
  }

  /**
   * updateIndex for a caller that holds the index lock already (inside withIndexLock: gc). Never
   * call it otherwise.
   */
  async replaceIndexLocked(change: (index: ImageIndex) => ImageIndex | void | Promise<ImageIndex | void>): Promise<ImageIndex> {
    const current = await this.readIndex();
    const { schemaVersion: _version, mediaType, ...rest } = (await change(current)) ?? current;
    const out: ImageIndex = { schemaVersion: 2, mediaType: mediaType ?? MediaType.OciIndex, ...rest };
    await atomicWriteFile(this.indexPath, JSON.stringify(out), this.tmpDir);
    return out;
  }

  /** Runs `fn` while holding the index lock (gc uses it so that no tag appears mid-sweep). */
  async withIndexLock<T>(fn: () => Promise<T>): Promise<T> {
    await this.confined();
    await mkdir(join(this.dir, PRIVATE_DIR), { recursive: true });
    return withFileLock(join(this.dir, PRIVATE_DIR, 'index.lock'), fn, { what: `${this.dir}/index.json` });
  }

  async roots(): Promise<Descriptor[]> {
    return (await this.readIndex()).manifests;
  }

  /** Tags in `index.json`, in file order: the ref.name annotation of each entry that has one. */
  async tags(): Promise<{ tag: string; descriptor: Descriptor }[]> {
    const index = await this.readIndex();
    return index.manifests.flatMap((d) => {
      const tag = d.annotations?.[Annotation.RefName];
      return tag === undefined ? [] : [{ tag, descriptor: d }];
    });
  }

  /**
   * Resolves a tag, a digest, or nothing (the layout's only image) to a descriptor, as skopeo does: a
   * name resolves to the first entry with that name whose type is a manifest or index.
   */
  async resolve(reference?: string): Promise<Descriptor> {
    const index = await this.readIndex();
    if (reference === undefined || reference === '') {
      if (index.manifests.length === 1) return index.manifests[0]!;
      if (index.manifests.length === 0) throw new OciToolError('NOT_FOUND', `${this.name}: no images in index.json`);
      throw new OciToolError('AMBIGUOUS', `${this.name}: holds ${index.manifests.length} images; name one with :TAG or @DIGEST`);
    }
    if (isValidDigest(reference) && reference.includes(':')) {
      const hit = index.manifests.find((d) => d.digest === reference);
      if (hit) return hit;
      const size = await this.stat(reference);
      if (size === undefined) throw new OciToolError('NOT_FOUND', `${this.name}@${reference}: manifest not found`);
      const bytes = await fetchBytes(this, { mediaType: 'application/octet-stream', digest: reference, size });
      const mediaType = detectManifestType(parseJson(bytes, `blob ${reference}`));
      if (mediaType === undefined || !isManifestType(mediaType)) {
        throw new OciToolError('NOT_FOUND', `${this.name}@${reference}: blob is not a manifest`);
      }
      return { mediaType, digest: reference, size };
    }
    const hit = index.manifests.find((d) => d.annotations?.[Annotation.RefName] === reference && isManifestType(d.mediaType));
    if (!hit) throw new OciToolError('NOT_FOUND', `${this.name}:${reference}: no such tag`);
    return hit;
  }

  /** Points `tag` at `desc` (see setTag). */
  async tag(desc: Descriptor, tag: string): Promise<void> {
    await this.updateIndex((index) => setTag(index, desc, tag));
  }

  /**
   * Adds `desc` to index.json without a name (a ref.name annotation it carries from elsewhere is
   * dropped), unless an entry with the same digest is there.
   */
  async addRoot(desc: Descriptor): Promise<void> {
    await this.updateIndex((index) => {
      if (!index.manifests.some((d) => d.digest === desc.digest)) index.manifests.push(withoutRefName(desc));
    });
  }

  /**
   * Removes a tag, or every entry with a digest. Returns the descriptors removed. Blobs stay until gc.
   */
  async untag(reference: string): Promise<Descriptor[]> {
    const removed: Descriptor[] = [];
    const byDigest = isValidDigest(reference) && reference.includes(':');
    await this.updateIndex((index) => {
      index.manifests = index.manifests.filter((d) => {
        const hit = byDigest ? d.digest === reference : d.annotations?.[Annotation.RefName] === reference;
        if (hit) removed.push(d);
        return !hit;
      });
    });
    if (removed.length === 0) {
      throw new OciToolError('NOT_FOUND', `${this.name}${byDigest ? '@' : ':'}${reference}: not in index.json`);
    }
    return removed;
  }

  /**
   * Entries of the private temp folder whose names ocitool made (tempName's shape; nothing else there is
   * touched), looked at with lstat.
   */
  async listTempFiles(): Promise<{ path: string; mtimeMs: number; isFile: boolean; isDirectory: boolean }[]> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (err) {
      if (errno(err) === 'ENOENT') return [];
      throw ioError(`cannot list ${this.tmpDir}`, err);
    }
    const out: { path: string; mtimeMs: number; isFile: boolean; isDirectory: boolean }[] = [];
    for (const name of names.filter(isTempName).sort()) {
      const path = join(this.tmpDir, name);
      const s = await lstat(path).catch(() => undefined);
      if (s) out.push({ path, mtimeMs: s.mtimeMs, isFile: s.isFile(), isDirectory: s.isDirectory() });
    }
    return out;
  }

  /**
   * Takes a lease: until it is released, every blob this layout object stores (or finds already
   * stored) is kept by gc, even before anything in index.json refers to it. Writers that store blobs
   * and then tag hold one from before their first blob until after the tag (see withLease).
   */
  async lease(): Promise<Lease> {
    await this.confined();
    if (this.leaseState === undefined) {
      const file = LeaseFile.create(this.leaseDir);
      this.leaseState = { file, refs: 0 };
      file.catch(() => undefined);
    }
    const state = this.leaseState;
    state.refs++;
    try {
      await state.file;
    } catch (err) {
      if (--state.refs === 0 && this.leaseState === state) this.leaseState = undefined;
      throw ioError(`cannot take a lease in ${this.leaseDir}`, err);
    }
    let released = false;
    return {
      hold: (desc) => this.record(desc.digest, desc.mediaType),
      release: async () => {
        if (released) return;
        released = true;
        if (--state.refs > 0) return;
        if (this.leaseState === state) this.leaseState = undefined;
        await (await state.file).release();
      },
    };
  }

  /** Runs `fn` (which stores blobs and then tags them) under a lease. */
  async withLease<T>(fn: () => Promise<T>): Promise<T> {
    const lease = await this.lease();
    try {
      return await fn();
    } finally {
      await lease.release();
    }
  }

  private async record(digest: string, mediaType?: string): Promise<void> {
    const state = this.leaseState;
    if (state !== undefined) await (await state.file).add(digest, mediaType);
  }

  private async statOrThrow(digest: string): Promise<number> {
    const size = await this.stat(digest);
    if (size === undefined) throw new OciToolError('NOT_FOUND', `blob ${digest} not found in ${this.name}`);
    return size;
  }
}

function ioError(message: string, cause: unknown): OciToolError {
  const code = errno(cause);
  return new OciToolError('IO', `${message}: ${code ?? (cause as Error).message}`, { cause });
}

/** A descriptor without the ref.name annotation it may carry (an untagged entry, an index's entry). */
export function withoutRefName(d: Descriptor): Descriptor {
  const { annotations: a, ...rest } = d;
  if (!a || !Object.keys(a).some((k) => k !== Annotation.RefName)) return rest;
  return { ...rest, annotations: Object.fromEntries(Object.entries(a).filter(([k]) => k !== Annotation.RefName)) };
}

/**
 * Points `tag` at `desc` in `index`: the entry that held the tag loses it (and is dropped if the tag
 * was its only name); an untagged entry with the same digest is replaced. Other entries are untouched.
 */
export function setTag(index: ImageIndex, desc: Descriptor, tag: string): void {
  const entry: Descriptor = { ...desc, annotations: { ...(desc.annotations ?? {}), [Annotation.RefName]: tag } };
  delete entry.data;
  index.manifests = index.manifests.flatMap((d) => {
    const name = d.annotations?.[Annotation.RefName];
    if (name === tag) return [];
    if (name === undefined && d.digest === desc.digest) return [];
    return [d];
  });
  index.manifests.push(entry);
}
