/**
 * Writing a new image (a build, an artifact, a repack) into any store: new blobs stream into the
 * destination as they are made when it takes streams of unknown digest (a layout, a registry), else
 * into a private spool layout; small documents (config, manifest) stay in memory; blobs of a base
 * image stay in the base's store. `write` then hands the whole graph to the one graph copy, which
 * skips what the destination holds, mounts or streams the base's blobs, and stores the documents,
 * children before parents.
 */
import { pipeline as pipelineCb, Readable } from 'node:stream';
import { VerifyingStream } from '../digest/verify.js';
import { copyGraph, worthRetrying, type CopyGraphOptions } from '../content/copy.js';
import { canPushStream, isRemoteRepository, type Fetcher, type Store, type StreamPusher } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { OciLayout } from '../layout/layout.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { makeTempDir } from '../util/fs.js';

/** How often a new blob is made again after a network failure on its way to the destination. */
const BLOB_ATTEMPTS = 3;

/**
 * Makes and stores a new blob, making it again (from its source: the output is reproducible) when
 * storing fails in a way worth retrying: nothing is spooled for a replay.
 */
export async function withRemakes<T>(what: string, make: () => Promise<T>, opts: { signal?: AbortSignal; warn?: (m: string) => void } = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await make();
    } catch (err) {
      if (attempt >= BLOB_ATTEMPTS || !worthRetrying(err) || opts.signal?.aborted) throw err;
      opts.warn?.(`${what}: ${(err as Error).message}; making it again (${attempt + 1} of ${BLOB_ATTEMPTS})`);
    }
  }
}

export class ImageWriter {
  private spool?: Promise<{ dir: { path: string; remove: () => Promise<void> }; layout: OciLayout }>;
  private readonly documents = new Map<string, Buffer>();
  /** Blobs made before (a cached layer): opened when the graph copy stores them. */
  private readonly provided = new Map<string, { open: () => NodeJS.ReadableStream; what: string }>();

  constructor(
    readonly destination: Store,
    /** Where blobs not made here live (a base image's store). */
    private readonly base?: Fetcher & { readonly name?: string },
  ) {}

  /** Where new blobs go: the destination itself when it takes streams, else the spool. */
  async sink(): Promise<StreamPusher> {
    if (canPushStream(this.destination)) return this.destination;
    return (await this.spooled()).layout;
  }

  private spooled(): Promise<{ dir: { path: string; remove: () => Promise<void> }; layout: OciLayout }> {
    // Registered as in use: a second Ctrl-C or an exit removes it too.
    this.spool ??= makeTempDir('spool').then(async (dir) => ({ dir, layout: await OciLayout.init(dir.path) }));
    return this.spool;
  }

  /** A small document made here (config, manifest), held until `write`. */
  document(mediaType: string, bytes: Buffer): Descriptor {
    const desc: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
    this.documents.set(desc.digest, bytes);
    return desc;
  }

  /**
   * A blob the image holds that exists elsewhere already (a cached layer's file): the graph copy
   * stores it as it does a base's blobs (skipped, mounted, or streamed from `open`, verified).
   */
  provide(desc: { digest: string }, open: () => NodeJS.ReadableStream, what: string): void {
    this.provided.set(desc.digest, { open, what });
  }

  /** Writes the graph below `root` to the destination (see the module comment). */
  async write(root: Descriptor, opts: Omit<CopyGraphOptions, 'transform'> = {}): Promise<void> {
    const dest = this.destination;
    const base = this.base;
    const spool = this.spool ? await this.spool : undefined;
    const source: Fetcher & { name: string } = {
      name: base?.name ?? 'the image being written',
      fetch: async (desc, o) => {
        const doc = this.documents.get(desc.digest);
        if (doc) return Readable.from([doc]);
        const given = this.provided.get(desc.digest);
        // Verified on its way, named in the error: it may have changed since it was checked.
        if (given) return pipelineCb(given.open(), new VerifyingStream(desc, given.what), () => undefined);
        if (spool && (await spool.layout.exists(desc))) return spool.layout.fetch(desc);
        if (!base) throw new OciToolError('NOT_FOUND', `blob ${desc.digest} was not written`);
        return base.fetch(desc, o);
      },
    };
    // A base in another repository of the same registry: its blobs are mounted, not uploaded.
    if (base && isRemoteRepository(base) && isRemoteRepository(dest) && base.host === dest.host && base.repository !== dest.repository) dest.addMountSource(base.repository);
    await copyGraph(source, dest, root, opts);
  }

  /** Removes the spool (a cleanup failure never replaces the caller's own outcome). */
  async close(): Promise<void> {
    if (this.spool) await this.spool.then((s) => s.dir.remove()).catch(() => undefined);
  }
}
