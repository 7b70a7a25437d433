/**
 * The one graph copy. Every command that moves images (copy, push, pull, convert, index, referrers,
 * build onto a base) goes through `copyGraph`: children before parents, each digest once, a bounded
 * number of requests at once, a subtree skipped when the destination holds its root, mounts before
 * uploads. Conversions are a per-node `transform` inside it (see convert.ts); a node the transform
 * leaves as it is passes on its original bytes, so an unchanged image keeps its digest.
 *
 * Failure and cancellation: the first failure (or the caller's signal) aborts every transfer in
 * flight and every one still queued; the copy then waits for all of them to settle and reports the
 * first cause, never a later or cleanup error.
 */
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import type { Descriptor } from '../spec/types.js';
import { isManifestType, livesElsewhere } from '../spec/media-types.js';
import { canPushTagged, isTagger, type ExistenceChecker, type Fetcher, type Mounter, type Pusher, type Tagger } from './store.js';
import { childrenOf, fetchManifest, type ManifestNode } from './graph.js';
import { OciToolError, errno } from '../util/errors.js';
import { digestOf } from '../digest/digest.js';
import { isVerifiedFor, markVerified } from '../digest/verify.js';

/**
 * What a copy reports as it goes. Blobs: start, progress (bytes so far, about ten times a second),
 * then done, or skip (the destination had it) or mount (the registry linked it from another
 * repository); a transfer that failed and starts over reports retry. Manifests: pushed or skip.
 */
export type CopyEvent =
  | { type: 'blob-start'; descriptor: Descriptor }
  | { type: 'blob-progress'; descriptor: Descriptor; bytes: number }
  | { type: 'blob-done'; descriptor: Descriptor; bytes: number; seconds: number; /** The blob it was made from (re-encoded), whose start was reported. */ source?: Descriptor }
  | { type: 'blob-skip'; descriptor: Descriptor }
  | { type: 'blob-mount'; descriptor: Descriptor; from: string }
  | { type: 'blob-retry'; descriptor: Descriptor; attempt: number; error: string }
  | { type: 'manifest-pushed'; descriptor: Descriptor }
  | { type: 'manifest-skip'; descriptor: Descriptor };

/** Where a copy writes: a store that takes blobs by descriptor, and may mount them. */
export type CopyDestination = Pusher & ExistenceChecker & Partial<Mounter>;

export interface CopyGraphOptions {
  /** Requests at once (default 4): existence checks, mounts, transfers, manifests; the largest blobs first. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Told of every step (see CopyEvent). */
  onProgress?: (event: CopyEvent) => void;
  /** A per-node change (a conversion): see NodeTransform. */
  transform?: NodeTransform;
  /**
   * Tags the root at the destination too, which must be a Tagger: in the same request that stores
   * it where the destination can (TaggedPusher, a registry's PUT by tag), else once it is copied.
   */
  tagRoot?: string;
}

/**
 * What a transform may use of the copy it runs in. Everything it starts goes through these, so the
 * copy's bound on requests, its retries and its cancellation hold for the transform's work too.
 */
export interface GraphContext {
  readonly src: Fetcher & { readonly name?: string };
  readonly dst: CopyDestination & Partial<Fetcher>;
  /** Aborted at the copy's first failure, or by the caller. */
  readonly signal: AbortSignal;
  emit(event: CopyEvent): void;
  /** Copies `desc` and what is below it (through the transform), once per digest; the result's descriptor. */
  visit(desc: Descriptor): Promise<Descriptor>;
  /** Stores a small document made here (config, manifest), unless the destination has it. */
  putDocument(mediaType: string, bytes: Buffer): Promise<Descriptor>;
  /** Runs `fn` in one of the copy's request slots (higher priority first). Never nest these. */
  limited<T>(fn: () => Promise<T>, priority?: number): Promise<T>;
  /** Runs `attempt` again (up to 4 times, with backoff) while it fails in a way worth retrying. */
  retrying<T>(desc: Descriptor, attempt: () => Promise<T>): Promise<T>;
}

/**
 * A per-node change, called for each manifest-like node (after it is read, before its children are
 * visited). It returns the descriptor of what it stored at the destination instead, or undefined to
 * leave the node as it is: then its children are visited (through the transform too) and, when none
 * of them changed, the node's original bytes are stored; otherwise the node with its children's new
 * descriptors.
 */
export type NodeTransform = (node: ManifestNode, g: GraphContext) => Promise<Descriptor | undefined>;

const TRANSFER_ATTEMPTS = 4;
const DEFAULT_CONCURRENCY = 4;
const PROGRESS_INTERVAL_MS = 100;

/** Error codes (errno, undici) of a connection that failed or dropped: the network, not the content. */
const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENETRESET', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
]);

/** Whether `err` or one of its causes is a network failure. */
function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = errno(e);
    if (code !== undefined && NETWORK_CODES.has(code)) return true;
  }
  return false;
}

/**
 * Only network trouble and retryable registry answers are worth another try. Everything else is
 * final: ocitool's own verdicts on content or requests (digest mismatch, not found, denied), a bad
 * archive or layout, a local file that cannot be read, and a bug.
 */
export function worthRetrying(err: unknown): boolean {
  // An error that says whether it is retryable (a registry's answer, a timeout) has the last word.
  if (err instanceof OciToolError && typeof (err as OciToolError & { retryable?: unknown }).retryable === 'boolean') return (err as OciToolError & { retryable: boolean }).retryable;
  return isNetworkError(err);
}

/**
 * A counting semaphore: at most `n` holders at once; waiters are let in by priority, highest first.
 * Blobs wait with their size as priority: starting the largest first keeps a big blob from running
 * alone at the end of a copy while the other slots sit idle.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: { priority: number; go: () => void }[] = [];
  constructor(private readonly n: number) {}
  async run<T>(fn: () => Promise<T>, priority = 0): Promise<T> {
    if (this.active >= this.n) {
      await new Promise<void>((go) => {
        let i = this.waiting.length;
        while (i > 0 && this.waiting[i - 1]!.priority < priority) i--;
        this.waiting.splice(i, 0, { priority, go });
      });
    }
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.go();
    }
  }
}

/** Counts bytes on their way through, reporting at most every PROGRESS_INTERVAL_MS. */
/** Passes bytes on, reporting how many went through (at most every PROGRESS_INTERVAL_MS). */
export class Meter extends Transform {
  bytes = 0;
  private last = 0;
  constructor(private readonly report: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const now = Date.now();
    if (now - this.last >= PROGRESS_INTERVAL_MS) {
      this.last = now;
      this.report(this.bytes);
    }
    cb(null, chunk);
  }
}


/** A descriptor pointing at `to`, the other fields of `from` (platform, annotations…) kept in their order. */
const repointed = (from: Descriptor, to: Descriptor): Descriptor => ({ ...from, mediaType: to.mediaType, digest: to.digest, size: to.size });

/** A manifest or index with its children replaced by the results of copying them. */
function rewritten(node: ManifestNode, results: Map<string, Descriptor>): Buffer {
  const doc = JSON.parse(node.bytes.toString('utf8')) as Record<string, unknown>;
  const map = (d: Descriptor): Descriptor => {
    const r = results.get(d.digest);
    return r && r.digest !== d.digest ? repointed(d, r) : d;
  };
  const p = node.parsed;
  if (p.kind === 'index') doc.manifests = p.index.manifests.map(map);
  if (p.kind === 'manifest') {
    doc.config = map(p.manifest.config);
    doc.layers = p.manifest.layers.map(map);
  }
  if (p.kind !== 'schema1' && doc.subject !== undefined) doc.subject = map(doc.subject as Descriptor);
  return Buffer.from(JSON.stringify(doc));
}

/**
 * Copies the graph below `root` from one store to another (see the module comment) and returns the
 * root at the destination: `root` itself unless a transform changed something.
 */
export async function copyGraph(src: Fetcher & { readonly name?: string }, dst: CopyDestination & Partial<Fetcher>, root: Descriptor, opts: CopyGraphOptions = {}): Promise<Descriptor> {
  const limiter = new Limiter(Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY));
  const emit = opts.onProgress ?? ((): void => undefined);
  const failed = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  const sig = { signal };
  const transform = opts.transform;
  /** Every piece of work started, so that a failure can wait for all of them to settle. */
  const started = new Set<Promise<unknown>>();
  let firstFailure: { err: unknown } | undefined;
  const fail = (err: unknown): void => {
    firstFailure ??= { err };
    failed.abort(err);
  };
  /** Keeps `p` among the work to settle; with `fatal`, its failure ends the copy at once. */
  const track = <T>(p: Promise<T>, fatal: boolean): Promise<T> => {
    started.add(p);
    p.then(
      () => started.delete(p),
      (err: unknown) => {
        started.delete(p);
        if (fatal) fail(err);
      },
    );
    return p;
  };

  const limited = <T>(fn: () => Promise<T>, priority = 0): Promise<T> =>
    track(
      limiter.run(async () => {
        signal.throwIfAborted();
        return fn();
      }, priority),
      false,
    );

  const retrying = async <T>(desc: Descriptor, attempt: () => Promise<T>): Promise<T> => {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (n >= TRANSFER_ATTEMPTS || !worthRetrying(err) || signal.aborted) throw err;
        emit({ type: 'blob-retry', descriptor: desc, attempt: n, error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 200 * 2 ** n));
        signal.throwIfAborted();
      }
    }
  };

  const putDocument = async (mediaType: string, bytes: Buffer): Promise<Descriptor> => {
    const desc: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
    const manifest = isManifestType(mediaType);
    await limited(async () => {
      if (await dst.exists(desc)) emit({ type: manifest ? 'manifest-skip' : 'blob-skip', descriptor: desc });
      else {
        await dst.push(desc, Readable.from([bytes]), sig);
        if (manifest) emit({ type: 'manifest-pushed', descriptor: desc });
      }
    }, Number.MAX_SAFE_INTEGER);
    return desc;
  };

  const results = new Map<string, Promise<Descriptor>>();
  const visit = (desc: Descriptor): Promise<Descriptor> => {
    let p = results.get(desc.digest);
    if (!p) {
      p = track(isManifestType(desc.mediaType) ? copyManifest(desc) : copyBlob(desc).then(() => desc), true);
      results.set(desc.digest, p);
    }
    return p;
  };

  const g: GraphContext = { src, dst, signal, emit, visit, putDocument, limited, retrying };

  const copyManifest = async (desc: Descriptor): Promise<Descriptor> => {
    signal.throwIfAborted();
    // Without a transform, a destination that holds the root holds everything below it.
    if (!transform && (await limited(() => dst.exists(desc), Number.MAX_SAFE_INTEGER))) {
      emit({ type: 'manifest-skip', descriptor: desc });
      return desc;
    }
    const node = await limited(() => fetchManifest(src, desc), Number.MAX_SAFE_INTEGER);
    const changed = transform ? await transform(node, g) : undefined;
    if (changed) return changed;
    // Largest first, as the limiter lets them in (see Limiter).
    const children = childrenOf(node.parsed);
    const done = new Map<string, Descriptor>();
    await Promise.all(
      [...children]
        .sort((a, b) => b.size - a.size)
        .map(async (c) => {
          done.set(c.digest, await visit(c));
        }),
    );
    // Changed means another digest: a blob two parents name with different media types is the same
    // blob, and the node keeps its bytes (only a transform decides to retype).
    if (children.every((c) => done.get(c.digest)!.digest === c.digest)) {
      await limited(async () => {
        if (transform && (await dst.exists(desc))) {
          emit({ type: 'manifest-skip', descriptor: desc });
          return;
        }
        if (opts.tagRoot !== undefined && desc.digest === root.digest && canPushTagged(dst)) {
          await dst.pushTagged(desc, node.bytes, opts.tagRoot, sig);
          rootTagged = true;
        } else await dst.push(desc, Readable.from([node.bytes]), sig);
        emit({ type: 'manifest-pushed', descriptor: desc });
      }, Number.MAX_SAFE_INTEGER);
      return desc;
    }
    return putDocument(node.parsed.mediaType, rewritten(node, done));
  };

  const copyBlob = (desc: Descriptor): Promise<void> =>
    limited(async () => {
      // Foreign (non-distributable) layers with URLs stay where they are, as docker and skopeo leave them.
      if (livesElsewhere(desc) || (await dst.exists(desc))) {
        emit({ type: 'blob-skip', descriptor: desc });
        return;
      }
      const mounted = dst.mount ? await dst.mount(desc, sig) : undefined;
      if (mounted) {
        emit({ type: 'blob-mount', descriptor: desc, from: mounted.from });
        return;
      }
      emit({ type: 'blob-start', descriptor: desc });
      const began = Date.now();
      // A stream cannot be replayed, so a transfer that fails in a way worth retrying starts over
      // from a fresh fetch.
      const bytes = await retrying(desc, () => transfer(desc));
      emit({ type: 'blob-done', descriptor: desc, bytes, seconds: (Date.now() - began) / 1000 });
    }, desc.size);

  const transfer = async (desc: Descriptor): Promise<number> => {
    let stream: Readable | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      stream = await src.fetch(desc, sig);
      let content = stream;
      let counted: { readonly bytes: number };
      if (typeof (stream as Partial<{ bytes: number }>).bytes === 'number') {
        // The fetched stream counts its bytes (a VerifyingStream): read the count every so often.
        counted = stream as unknown as { readonly bytes: number };
        let last = -1;
        timer = setInterval(() => {
          if (counted.bytes !== last) emit({ type: 'blob-progress', descriptor: desc, bytes: (last = counted.bytes) });
        }, PROGRESS_INTERVAL_MS);
        timer.unref();
      } else {
        // pipeline passes on the source's end, errors and premature close, so a verified source stays verified.
        const meter = new Meter((bytes) => emit({ type: 'blob-progress', descriptor: desc, bytes }));
        meter.on('error', () => undefined); // errors reach the destination; after push() gave up, nobody listens
        content = pipeline(stream, meter, () => undefined);
        if (isVerifiedFor(stream, desc.digest)) markVerified(content, desc.digest);
        counted = meter;
      }
      await dst.push(desc, content, sig);
      return counted.bytes;
    } catch (err) {
      stream?.destroy();
      throw err;
    } finally {
      clearInterval(timer);
    }
  };

  let result: Descriptor | undefined;
  let rootTagged = false;
  if (opts.tagRoot !== undefined && !isTagger(dst)) throw new OciToolError('USAGE', `copy: ${(dst as { name?: string }).name ?? 'the destination'} cannot hold tags`);
  try {
    result = await visit(root);
    if (opts.tagRoot !== undefined && !rootTagged) await (dst as CopyDestination & Tagger).tag(result, opts.tagRoot);
  } catch (err) {
    fail(err);
  }
  if (firstFailure) {
    // Everything started settles (aborted transfers remove their temp files) before the copy reports.
    while (started.size > 0) await Promise.allSettled([...started]);
    throw firstFailure.err;
  }
  return result!;
}
