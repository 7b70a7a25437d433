import { randomBytes } from 'node:crypto';
import { lstat, open, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciToolError, errno } from '../util/errors.js';
import { processAlive } from '../util/fs.js';
import { readRegularFile } from './files.js';

export interface LockOptions {
  /** Give up after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** A lock whose owner is on another host counts as stale after this long untouched (default 10 min). */
  staleMs?: number;
  /** Names the locked thing in errors. */
  what?: string;
}

interface Owner {
  pid: number;
  host: string;
  time: number;
  /** Random per acquisition: release removes the file only while it still holds our token. */
  token: string;
}

/** A takeover marker older than this, whose owner is not known to be alive here, is left over. */
const MARKER_STALE_MS = 10_000;

/**
 * Cross-process exclusive lock on a file path, taken with O_CREAT|O_EXCL. The file records the owner's
 * pid, host and a random token; the holder touches it while it holds it, and release removes it only
 * while it still holds that token. A lock left by a dead process on this host (or one untouched for
 * `staleMs` from another host) is broken: breakers take turns through an O_EXCL takeover marker, re-read
 * the lock under it and remove it only if it is still the stale one. Nothing is ever renamed over a lock,
 * so a new holder's lock is never replaced.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquire(path, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}

const newOwner = (): Owner => ({ pid: process.pid, host: hostname(), time: Date.now(), token: randomBytes(12).toString('hex') });

/** Creates `path` holding `owner`, or returns false when it exists. */
async function createExclusive(path: string, owner: Owner, what: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o644);
  } catch (err) {
    if (errno(err) === 'EEXIST') return false;
    throw new OciToolError('IO', `cannot lock ${what}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  }
  try {
    await fh.writeFile(JSON.stringify(owner));
  } finally {
    await fh.close();
  }
  return true;
}

async function acquire(path: string, opts: LockOptions): Promise<() => Promise<void>> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const staleMs = opts.staleMs ?? 600_000;
  const what = opts.what ?? path;
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    const me = newOwner();
    if (await createExclusive(path, me, what)) {
      // Touching the file tells waiters on other hosts that the holder lives.
      const heartbeat = setInterval(() => void utimes(path, new Date(), new Date()).catch(() => undefined), Math.max(1000, staleMs / 4));
      heartbeat.unref();
      return async () => {
        clearInterval(heartbeat);
        await removeIfHeld(path, (raw) => ownerOf(raw)?.token === me.token);
      };
    }
    const seen = await readLock(path);
    if (seen !== undefined && isStale(seen, staleMs)) {
      await breakStale(path, seen.raw, what);
      continue;
    }
    if (Date.now() >= deadline) {
      const owner = seen && ownerOf(seen.raw);
      const by = owner ? ` (held by pid ${owner.pid} on ${owner.host})` : '';
      throw new OciToolError('LOCKED', `timed out waiting for the lock on ${what}${by}`);
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** Removes a stale lock whose content is still `staleRaw`, holding the takeover marker while it looks. */
async function breakStale(path: string, staleRaw: string, what: string): Promise<void> {
  const marker = `${path}.takeover`;
  const me = newOwner();
  if (!(await createExclusive(marker, me, what))) {
    // Another waiter is breaking it (and holds the marker for a moment); a marker left by a breaker
    // that died is removed, if it is still the one we looked at.
    const m = await readLock(marker);
    if (m !== undefined && isStale(m, MARKER_STALE_MS)) await removeIfHeld(marker, (raw) => raw === m.raw);
    return;
  }
  try {
    await removeIfHeld(path, (raw) => raw === staleRaw);
  } finally {
    await removeIfHeld(marker, (raw) => ownerOf(raw)?.token === me.token);
  }
}

async function removeIfHeld(path: string, ours: (raw: string) => boolean): Promise<void> {
  const lock = await readLock(path);
  if (lock !== undefined && ours(lock.raw)) await unlink(path).catch(() => undefined);
}

function ownerOf(raw: string): Owner | undefined {
  try {
    const v = JSON.parse(raw) as Partial<Owner>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.time === 'number' && typeof v.token === 'string') return v as Owner;
  } catch {
    /* being written right now, or not ours */
  }
  return undefined;
}

/**
 * A lock file's content and mtime; undefined when it is gone. One that is not a small regular file (a
 * FIFO, a link, a huge file: a hostile layout) is refused in one line rather than waited on.
 */
async function readLock(path: string): Promise<{ raw: string; mtimeMs: number } | undefined> {
  const gone = (): OciToolError => new OciToolError('NOT_FOUND', `${path} is gone`);
  try {
    const raw = (await readRegularFile(path, LOCK_CAP, `lock ${path}`, { noFollow: true, missing: gone })).toString('utf8');
    return { raw, mtimeMs: (await lstat(path)).mtimeMs };
  } catch (err) {
    if ((err instanceof OciToolError && err.code === 'NOT_FOUND') || errno(err) === 'ENOENT') return undefined; // released since
    throw err;
  }
}

const LOCK_CAP = 4096;

/**
 * A lock is stale when its owner is a dead process on this host, or when it has not been touched for
 * `staleMs` and its owner is not known to live (another host, or a file that never got its owner
 * written, as when its writer died between the create and the write).
 */
function isStale(lock: { raw: string; mtimeMs: number }, staleMs: number): boolean {
  const owner = ownerOf(lock.raw);
  if (owner !== undefined && owner.host === hostname()) return !processAlive(owner.pid);
  const idleMs = Date.now() - lock.mtimeMs;
  return idleMs > (owner === undefined ? Math.min(staleMs, MARKER_STALE_MS) : staleMs);
}
