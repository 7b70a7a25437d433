import { open, readFile, rename, unlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciToolError, errno } from '../util/errors.js';
import { processAlive } from '../util/fs.js';

export interface LockOptions {
  /** Give up after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** A lock whose owner is on another host counts as stale after this long (default 10 min). */
  staleMs?: number;
  /** Names the locked thing in errors. */
  what?: string;
}

interface Owner {
  pid: number;
  host: string;
  time: number;
}

/**
 * Cross-process exclusive lock on a file path, taken with O_CREAT|O_EXCL. The file records the owner's
 * pid and host; a lock left by a dead process on this host (or an old one from another host) is broken.
 * Breaking goes through a rename to a unique name, so two waiters cannot both break the same lock.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquire(path, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

async function acquire(path: string, opts: LockOptions): Promise<() => Promise<void>> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const staleMs = opts.staleMs ?? 600_000;
  const deadline = Date.now() + timeoutMs;
  const me: Owner = { pid: process.pid, host: hostname(), time: Date.now() };
  let delay = 2;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(JSON.stringify(me));
      } finally {
        await fh.close();
      }
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if (errno(err) !== 'EEXIST') {
        throw new OciToolError('IO', `cannot lock ${opts.what ?? path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const owner = await readOwner(path);
    if (owner !== undefined && (await isStale(path, owner, staleMs))) {
      const aside = `${path}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
      // Only the waiter whose rename succeeds breaks it; re-check the owner after the rename.
      try {
        await rename(path, aside);
        const moved = await readOwner(aside);
        if (moved !== undefined && (moved.pid !== owner.pid || moved.host !== owner.host)) {
          // We moved a fresh lock by mistake: put it back if the slot is still free.
          await rename(aside, path).catch(() => undefined);
        } else {
          await unlink(aside).catch(() => undefined);
        }
      } catch {
        /* someone else broke it */
      }
      continue;
    }
    if (Date.now() >= deadline) {
      const by = owner ? ` (held by pid ${owner.pid} on ${owner.host})` : '';
      throw new OciToolError('LOCKED', `timed out waiting for the lock on ${opts.what ?? path}${by}`);
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
}

async function readOwner(path: string): Promise<Owner | undefined> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as Partial<Owner>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.time === 'number') return v as Owner;
  } catch {
    /* missing, or being written right now */
  }
  return undefined;
}

async function isStale(path: string, owner: Owner, staleMs: number): Promise<boolean> {
  if (owner.host === hostname()) return !processAlive(owner.pid);
  try {
    const s = await stat(path);
    return Date.now() - s.mtimeMs > staleMs;
  } catch {
    return false;
  }
}
