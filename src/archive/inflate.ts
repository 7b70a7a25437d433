/**
 * A gzip-compressed archive decompressed into a private temp directory (the index needs to seek), with
 * a bound on what it may grow to, and the directory removed when the process is interrupted.
 *
 * Bound: by default the inflated tar may be at most INFLATE_RATIO times the compressed file, and never
 * less than INFLATE_FLOOR bytes; `OCITOOL_MAX_INFLATED` (bytes, or with a K/M/G/T suffix, powers of
 * 1024) sets the bound instead. Past it the archive is refused (TOO_LARGE) and the partial file removed.
 *
 * Interruption: while such a directory exists, SIGINT, SIGTERM and SIGHUP remove it at once
 * (synchronously), stop the decompression in progress, and, when nobody else handles the signal,
 * end the process by it as if ocitool had not been listening. It is held among the process's temps
 * (util/fs.ts), so an exit removes it too.
 */
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { OciToolError } from '../util/errors.js';
import { holdTemp, removeQuietly } from '../util/fs.js';

export const INFLATE_RATIO = 100;
export const INFLATE_FLOOR = 64 * 1024 * 1024;
export const MAX_INFLATED_ENV = 'OCITOOL_MAX_INFLATED';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Each directory with the function that forgets it among the process's held temps (util/fs.ts). */
const live = new Map<string, () => void>();
const running = new Set<AbortController>();

function onSignal(sig: NodeJS.Signals): void {
  // Listening first (prepended), so a command's own once-listener (copy's) is still counted here.
  const others = process.listenerCount(sig) - 1;
  removeAll();
  for (const c of running) c.abort(new OciToolError('INTERRUPTED', `interrupted (${sig})`));
  listen(false);
  // Nobody else handles it: end by the signal, as the process would have without us.
  if (others === 0) process.kill(process.pid, sig);
}

function removeAll(): void {
  for (const [dir, release] of live) {
    rmSync(dir, { recursive: true, force: true });
    release();
  }
  live.clear();
}

let listening = false;
function listen(on: boolean): void {
  if (on === listening) return;
  listening = on;
  for (const s of SIGNALS) {
    if (on) process.prependListener(s, onSignal);
    else process.removeListener(s, onSignal);
  }
}

/** The bound for a compressed file of `compressed` bytes. */
export function inflateLimit(compressed: number, env: NodeJS.ProcessEnv = process.env): number {
  const set = env[MAX_INFLATED_ENV]?.trim();
  if (set === undefined || set === '') return Math.max(INFLATE_FLOOR, compressed * INFLATE_RATIO);
  const m = /^([0-9]+)([KMGT]?)(i?B)?$/i.exec(set);
  if (!m) throw new OciToolError('USAGE', `${MAX_INFLATED_ENV}=${set}: not a byte count (like 2147483648 or 2G)`);
  return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
}

/** Counts what passes; fails once more than `limit` bytes came through. */
class Bound extends Transform {
  private n = 0;
  constructor(
    private readonly limit: number,
    private readonly over: () => Error,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.n += chunk.length;
    cb(this.n > this.limit ? this.over() : null, chunk);
  }
}

/**
 * Decompresses `file` (gzip) into a new temp directory; returns the tar's path and the cleanup that
 * removes it. `what` names the archive in errors.
 */
export async function inflateToTemp(file: string, what: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const limit = inflateLimit((await stat(file)).size);
  const dir = await mkdtemp(join(tmpdir(), 'ocitool-archive-'));
  live.set(dir, holdTemp(dir));
  listen(true);
  const cleanup = async (): Promise<void> => {
    const release = live.get(dir);
    if (!release) return;
    live.delete(dir);
    if (live.size === 0) listen(false);
    if (await removeQuietly(dir)) release(); // never throws: a cleanup does not replace the outcome
  };
  const abort = new AbortController();
  running.add(abort);
  const path = join(dir, 'archive.tar');
  try {
    const over = (): Error => new OciToolError('TOO_LARGE', `${what}: decompresses to more than ${limit} bytes (a gzip bomb?); set ${MAX_INFLATED_ENV} to a larger byte count to read it`);
    await pipeline(createReadStream(file), createGunzip(), new Bound(limit, over), createWriteStream(path), { signal: abort.signal });
    return { path, cleanup };
  } catch (err) {
    await cleanup();
    if (abort.signal.aborted) throw abort.signal.reason;
    if (err instanceof OciToolError) throw err;
    throw new OciToolError('INVALID_ARCHIVE', `${what}: cannot decompress (${(err as Error).message})`);
  } finally {
    running.delete(abort);
  }
}
