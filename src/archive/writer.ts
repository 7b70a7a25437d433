/**
 * Archives as destinations. Both are written to a temp file beside the target and renamed into place
 * by commit(), after the copy succeeded; abort() removes the temp file, so a failed or interrupted
 * copy leaves no archive (and no half of one) behind. Neither abort() nor the cleanup after a failed
 * commit() ever throws (the failure that led there is what gets reported), and every temp file and
 * folder is held (util/fs.ts) until removed, so that an exit at once (a second Ctrl-C) removes it too.
 * A `signal` (push's, commit's) stops the member being written: the archive is then broken, and only
 * abort() is left to do.
 *
 * - docker-archive: the `docker save` shape that `docker load` and skopeo read: `<hex>.json` config,
 *   uncompressed `<diffID hex>.tar` layers (a compressed layer is decompressed into a temp file first:
 *   a tar header needs the size up front) and `manifest.json` with Config, RepoTags and Layers.
 * - oci-archive: the image goes into an OCI layout in a temp directory, which commit() tars up.
 */
import { constants, createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, pipeline as pipelineCb } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Pack } from 'tar-stream';
import { readCapped, type SingleImageStore, type Store } from '../content/store.js';
import { parseDigest } from '../digest/digest.js';
import { HashingStream, VerifyingStream, isVerifiedFor } from '../digest/verify.js';
import { OciLayout } from '../layout/layout.js';
import { asContentError, decompressor, detectCompression, peek } from '../layer/compression.js';
import { isImageConfigType, isIndexType, isManifestType } from '../spec/media-types.js';
import { MAX_JSON_BYTES, checkImageManifest, parseJson } from '../spec/parse.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { abortWith, holdTemp, makeTempDir, removeQuietly, tempName } from '../util/fs.js';

/** A destination that must be finished (or dropped) once the copy is over. */
export interface Committable {
  commit(): Promise<void>;
  abort(): Promise<void>;
}

const MTIME = new Date(0);

/** Writes `tar` entries one after another into a temp file that commit() renames to `file`. */
class TarFileWriter {
  readonly temp: string;
  private readonly pack: Pack;
  private readonly out: WriteStream;
  private readonly done: Promise<void>;
  private queue: Promise<void> = Promise.resolve();
  /** The error that broke the archive: a member cut short cannot be taken back, so nothing more goes in. */
  private broken?: OciToolError;
  private readonly release: () => void;

  constructor(readonly file: string) {
    this.temp = tempName(dirname(file), `.${basename(file)}`);
    this.release = holdTemp(this.temp);
    this.pack = pack();
    this.out = createWriteStream(this.temp, { flags: 'wx' });
    this.done = pipeline(this.pack, this.out);
    this.done.catch((err: unknown) => {
      this.broken ??= new OciToolError('INVALID_ARCHIVE', `${file}: cannot write the archive (${(err as Error).message})`);
    });
  }

  /** Fails early, with the reason, when the archive's folder cannot take it. */
  static async checkWritable(file: string): Promise<void> {
    try {
      await access(dirname(file), constants.W_OK);
    } catch (err) {
      throw new OciToolError('IO', `${file}: cannot write there (${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message})`);
    }
  }

  /** Adds an entry of `size` bytes from `content` (after the entries added before it); `signal` stops it. */
  add(name: string, size: number, content: () => Readable | Promise<Readable>, signal?: AbortSignal): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.broken) throw this.broken;
      signal?.throwIfAborted();
      const opened = await content();
      const src = signal ? abortWith(signal, opened) : opened;
      await new Promise<void>((resolve, reject) => {
        const entry = this.pack.entry({ name, size, mode: 0o644, mtime: MTIME, uid: 0, gid: 0 }, (err) => (err ? reject(err) : resolve()));
        entry.on('error', reject); // a member shorter or longer than its size
        src.on('error', (err) => {
          entry.destroy(err);
          reject(err);
        });
        src.pipe(entry);
      }).catch((err: unknown) => {
        if (signal?.aborted) {
          this.broken ??= new OciToolError('INTERRUPTED', `${this.file}: interrupted while writing ${name}`);
          throw signal.reason;
        }
        this.broken ??= err instanceof OciToolError ? err : new OciToolError('INVALID_ARCHIVE', `${this.file}: cannot write ${name} (${(err as Error).message})`);
        throw this.broken;
      });
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  addBytes(name: string, bytes: Buffer): Promise<void> {
    return this.add(name, bytes.length, () => Readable.from([bytes]));
  }

  async commit(): Promise<void> {
    await this.queue;
    this.pack.finalize();
    await this.done;
    const fh = await open(this.temp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.temp, this.file);
    this.release();
  }

  /** Drops the archive: the temp file is removed. Never throws. */
  async abort(): Promise<void> {
    this.pack.destroy();
    this.out.destroy();
    await this.done.catch(() => undefined);
    if (await removeQuietly(this.temp)) this.release();
  }
}

/** A `docker save` tar being written (see the module comment). */
/** Fails early when `file`'s folder cannot take an archive (before any transfer starts). */
export const checkArchiveTarget = (file: string): Promise<void> => TarFileWriter.checkWritable(file);

export class DockerArchiveWriter implements Store, Committable, SingleImageStore {
  readonly name: string;
  readonly singleImagesOnly = true as const;
  private readonly tar: TarFileWriter;
  /** Blob digest → member name (config `<hex>.json`, layer `<diffID hex>.tar`). */
  private readonly members = new Map<string, Promise<string>>();
  private readonly written = new Set<string>();
  private readonly manifests = new Map<string, Buffer>();
  private root?: Descriptor;
  private readonly repoTags: string[] = [];
  /** The private folder for decompressed layers, made when the first is needed. */
  private work?: Promise<{ path: string; remove: () => Promise<void> }>;

  constructor(readonly file: string) {
    this.name = `docker-archive:${file}`;
    this.tar = new TarFileWriter(file);
  }

  async resolve(reference: string): Promise<Descriptor> {
    throw new OciToolError('UNSUPPORTED', `${this.name}: an archive being written cannot be read (${reference})`);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    throw new OciToolError('UNSUPPORTED', `${this.name}: an archive being written cannot be read (${desc.digest})`);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.members.has(desc.digest) || this.manifests.has(desc.digest);
  }

  async push(desc: Descriptor, input: Readable, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const content = opts.signal ? abortWith(opts.signal, input) : input;
    if (isIndexType(desc.mediaType)) {
      content.destroy();
      throw new OciToolError('UNSUPPORTED', `${this.name}: a docker archive holds single images, not an index: name a platform (--platform)`);
    }
    if (isManifestType(desc.mediaType)) {
      const bytes = await readCapped(content, MAX_JSON_BYTES, desc.digest);
      this.manifests.set(desc.digest, bytes);
      this.root = desc;
      return;
    }
    if (this.members.has(desc.digest)) {
      content.destroy();
      await this.members.get(desc.digest);
      return;
    }
    const p = this.store(desc, content, opts.signal);
    this.members.set(desc.digest, p);
    await p;
  }

  private async store(desc: Descriptor, content: Readable, signal: AbortSignal | undefined): Promise<string> {
    const verified = isVerifiedFor(content, desc.digest) ? content : pipelineCb(content, new VerifyingStream(desc, `blob ${desc.digest}`), () => undefined);
    const hex = parseDigest(desc.digest).encoded;
    if (isImageConfigType(desc.mediaType)) {
      await this.tar.add(`${hex}.json`, desc.size, () => verified, signal);
      return `${hex}.json`;
    }
    // Under 4 bytes nothing is compressed (and there is nothing to peek at).
    const kind = desc.size < 4 ? 'none' : detectCompression(await peek(verified));
    if (kind === 'none') {
      // A plain tar is its own diffID: streamed straight in.
      const name = `${hex}.tar`;
      if (!this.written.has(name)) {
        this.written.add(name);
        await this.tar.add(name, desc.size, () => verified, signal);
      } else verified.destroy();
      return name;
    }
    // Compressed: decompressed into a temp file first (a tar header needs the size).
    this.work ??= makeTempDir('docker-archive');
    const tmp = join((await this.work).path, hex);
    const diff = new HashingStream('sha256');
    try {
      await pipeline(verified, decompressor(kind), diff, createWriteStream(tmp), signal ? { signal } : {}).catch((err: unknown) => {
        if (signal?.aborted) throw signal.reason;
        throw asContentError(err, desc.digest, kind);
      });
      const name = `${parseDigest(diff.digest).encoded}.tar`;
      if (!this.written.has(name)) {
        this.written.add(name);
        await this.tar.add(name, diff.size, () => createReadStream(tmp, { highWaterMark: 1 << 20 }), signal);
      }
      return name;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Names the image in manifest.json's RepoTags (`NAME:TAG`, as docker save writes them). */
  async tag(_desc: Descriptor, reference: string): Promise<void> {
    if (!this.repoTags.includes(reference)) this.repoTags.push(reference);
  }

  async commit(): Promise<void> {
    try {
      if (!this.root) throw new OciToolError('UNSUPPORTED', `${this.name}: no image was written`);
      const manifest = checkImageManifest(parseJson(this.manifests.get(this.root.digest)!, `manifest ${this.root.digest}`), `manifest ${this.root.digest}`);
      if (!isImageConfigType(manifest.config.mediaType)) throw new OciToolError('UNSUPPORTED', `${this.name}: an artifact (config ${manifest.config.mediaType}) cannot go into a docker archive`);
      const file = async (d: Descriptor): Promise<string> => {
        const m = this.members.get(d.digest);
        if (!m) throw new OciToolError('UNSUPPORTED', `${this.name}: layer ${d.digest} was not written (foreign layers cannot go into a docker archive)`);
        return m;
      };
      const item = { Config: await file(manifest.config), RepoTags: this.repoTags, Layers: await Promise.all(manifest.layers.map(file)) };
      await this.tar.addBytes('manifest.json', Buffer.from(JSON.stringify([item])));
      await this.tar.commit();
    } catch (err) {
      await this.abort();
      throw err;
    } finally {
      await this.removeWork();
    }
  }

  /** Drops the archive and the decompressed layers. Never throws. */
  async abort(): Promise<void> {
    await this.tar.abort();
    await this.removeWork();
  }

  private async removeWork(): Promise<void> {
    const work = await this.work?.catch(() => undefined);
    await work?.remove();
  }
}

/** An OCI layout in a temp directory that commit() turns into a tar at `file` (oci-archive:). */
export class OciArchiveWriter implements Committable {
  private constructor(
    readonly file: string,
    readonly layout: OciLayout,
    private readonly dir: { path: string; remove: () => Promise<void> },
  ) {}

  static async create(file: string): Promise<OciArchiveWriter> {
    await TarFileWriter.checkWritable(file);
    const dir = await makeTempDir('oci-archive');
    try {
      const layout = await OciLayout.init(join(dir.path, 'layout'), { sync: false });
      return new OciArchiveWriter(file, layout, dir);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** Tars the layout up into the archive (`signal` stops it: then nothing is left). */
  async commit(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const tar = new TarFileWriter(this.file);
    try {
      const root = join(this.dir.path, 'layout');
      const add = async (rel: string): Promise<void> => {
        const s = await stat(join(root, rel));
        await tar.add(rel, s.size, () => createReadStream(join(root, rel), { highWaterMark: 1 << 20 }), opts.signal);
      };
      await add('oci-layout');
      await add('index.json');
      for (const alg of (await readdir(join(root, 'blobs'))).sort()) {
        for (const hex of (await readdir(join(root, 'blobs', alg))).sort()) await add(`blobs/${alg}/${hex}`);
      }
      await tar.commit();
    } catch (err) {
      await tar.abort();
      throw err;
    } finally {
      await this.dir.remove();
    }
  }

  /** Drops the temp layout. Never throws. */
  async abort(): Promise<void> {
    await this.dir.remove();
  }
}

