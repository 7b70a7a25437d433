import type { Descriptor } from '../spec/types.js';
import { isManifestType } from '../spec/media-types.js';
import type { ExistenceChecker, Fetcher, Pusher } from './store.js';
import { childrenOf, fetchManifest } from './graph.js';
import { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';

export interface CopyGraphOptions {
  /** Blob transfers at once (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  /** Called as each node is stored ('copied') or found already there ('skipped'). */
  onNode?: (desc: Descriptor, what: 'copied' | 'skipped') => void;
}

const TRANSFER_ATTEMPTS = 4;

/**
 * Network trouble and retryable registry answers are worth another try; ocitool's own verdicts on
 * content or requests (digest mismatch, not found, denied) are not.
 */
function worthRetrying(err: unknown): boolean {
  if (err instanceof OciToolError) return (err as OciToolError & { retryable?: boolean }).retryable === true || err.code === 'IO';
  return err instanceof Error; // a connection that dropped mid-stream, a socket error
}

/** A counting semaphore: at most `n` holders at once. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * Copies the graph below `root` from one store to another: children before parents (so that a
 * destination never holds a manifest whose blobs are missing), each digest once, a bounded number of
 * transfers at once, and a whole subtree skipped when the destination already has its root.
 */
export async function copyGraph(src: Fetcher, dst: Pusher & ExistenceChecker, root: Descriptor, opts: CopyGraphOptions = {}): Promise<void> {
  const limiter = new Limiter(Math.max(1, opts.concurrency ?? 4));
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
    opts.signal?.throwIfAborted();
    if (await dst.exists(desc)) {
      opts.onNode?.(desc, 'skipped');
      return;
    }
    if (isManifestType(desc.mediaType)) {
      const node = await limiter.run(() => fetchManifest(src, desc));
      await Promise.all(childrenOf(node.parsed).map(visit));
      await dst.push(desc, Readable.from([node.bytes]), opts.signal ? { signal: opts.signal } : {});
    } else {
      await limiter.run(async () => {
        // A stream cannot be replayed, so a transfer that fails in a way worth retrying starts over
        // from a fresh fetch.
        for (let attempt = 1; ; attempt++) {
          try {
            const stream = await src.fetch(desc, opts.signal ? { signal: opts.signal } : {});
            await dst.push(desc, stream, opts.signal ? { signal: opts.signal } : {});
            return;
          } catch (err) {
            if (attempt >= TRANSFER_ATTEMPTS || !worthRetrying(err) || opts.signal?.aborted) throw err;
            await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
          }
        }
      });
    }
    opts.onNode?.(desc, 'copied');
  };
  await visit(root);
}
