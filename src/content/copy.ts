import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import type { Descriptor } from '../spec/types.js';
import { isManifestType, livesElsewhere } from '../spec/media-types.js';
import type { ExistenceChecker, Fetcher, Mounter, Pusher } from './store.js';
import { childrenOf, fetchManifest } from './graph.js';
import { OciToolError, errno } from '../util/errors.js';
import { isVerifiedFor, markVerified } from '../digest/verify.js';

/**
 * What a copy reports as it goes. Blobs: start, progress (bytes so far, about ten times a second),
 * then done, or skip (the destination had it) or mount (the registry linked it from another
 * repository); a transfer that failed and starts over reports retry. Manifests: pushed or skip.
 */
export type CopyEvent =
  | { type: 'blob-start'; descriptor: Descriptor }
  | { type: 'blob-progress'; descriptor: Descriptor; bytes: number }
  | { type: 'blob-done'; descriptor: Descriptor; bytes: number; seconds: number }
  | { type: 'blob-skip'; descriptor: Descriptor }
  | { type: 'blob-mount'; descriptor: Descriptor; from: string }
  | { type: 'blob-retry'; descriptor: Descriptor; attempt: number; error: string }
  | { type: 'manifest-pushed'; descriptor: Descriptor }
  | { type: 'manifest-skip'; descriptor: Descriptor };

export interface CopyGraphOptions {
  /** Blob transfers at once (default 4), the largest blobs first. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Told of every step (see CopyEvent). */
  onProgress?: (event: CopyEvent) => void;
}

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
  if (err instanceof OciToolError && (err as OciToolError & { retryable?: boolean }).retryable === true) return true;
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
class Meter extends Transform {
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

/**
 * Copies the graph below `root` from one store to another: children before parents (so that a
 * destination never holds a manifest whose blobs are missing), each digest once, a bounded number of
 * transfers at once, and a whole subtree skipped when the destination already has its root. A
 * destination that can mount (a registry) is asked to before any byte is fetched.
 */
export async function copyGraph(src: Fetcher, dst: Pusher & ExistenceChecker & Partial<Mounter>, root: Descriptor, opts: CopyGraphOptions = {}): Promise<void> {
  const limiter = new Limiter(Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY));
  const emit = opts.onProgress ?? ((): void => undefined);
  // The first failure that ends the copy also stops the transfers still going (no pointless retries).
  const failed = new AbortController();
  const stop = opts.signal ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  const sig = { signal: stop };
  const done = new Map<string, Promise<void>>();
  const visit = (desc: Descriptor): Promise<void> => {
    let p = done.get(desc.digest);
    if (!p) {
      p = copyNode(desc);
      done.set(desc.digest, p);
    }
    return p;
  };
  const copyNode = async (desc: Descriptor): Promise<void> => {
    stop.throwIfAborted();
    const manifest = isManifestType(desc.mediaType);
    // Foreign (non-distributable) layers with URLs stay where they are, as docker and skopeo leave them.
    if (livesElsewhere(desc) || (await dst.exists(desc))) {
      emit({ type: manifest ? 'manifest-skip' : 'blob-skip', descriptor: desc });
      return;
    }
    if (manifest) {
      const node = await limiter.run(() => fetchManifest(src, desc), Number.MAX_SAFE_INTEGER);
      // Largest first, as the limiter lets them in (see Limiter).
      await Promise.all([...childrenOf(node.parsed)].sort((a, b) => b.size - a.size).map(visit));
      await dst.push(desc, Readable.from([node.bytes]), sig);
      emit({ type: 'manifest-pushed', descriptor: desc });
      return;
    }
    await limiter.run(async () => {
      const mounted = dst.mount ? await dst.mount(desc, sig) : undefined;
      if (mounted) {
        emit({ type: 'blob-mount', descriptor: desc, from: mounted.from });
        return;
      }
      emit({ type: 'blob-start', descriptor: desc });
      const started = Date.now();
      // A stream cannot be replayed, so a transfer that fails in a way worth retrying starts over
      // from a fresh fetch.
      for (let attempt = 1; ; attempt++) {
        let stream: Readable | undefined;
        let timer: NodeJS.Timeout | undefined;
        let counted: { readonly bytes: number } = { bytes: 0 };
        try {
          stream = await src.fetch(desc, sig);
          let content = stream;
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
          emit({ type: 'blob-done', descriptor: desc, bytes: counted.bytes, seconds: (Date.now() - started) / 1000 });
          return;
        } catch (err) {
          stream?.destroy();
          if (attempt >= TRANSFER_ATTEMPTS || !worthRetrying(err) || stop.aborted) throw err;
          emit({ type: 'blob-retry', descriptor: desc, attempt, error: (err as Error).message });
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
        } finally {
          clearInterval(timer);
        }
      }
    }, desc.size);
  };
  try {
    await visit(root);
  } catch (err) {
    failed.abort(err);
    throw err;
  }
}
