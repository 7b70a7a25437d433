import { lstat, mkdir, open, readdir, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isValidDigest } from '../digest/digest.js';
import { OciToolError, errno } from '../util/errors.js';
import { isTempName, pidOfTempName, processAlive, tempName } from '../util/fs.js';
import { readRegularFile } from './files.js';

/**
 * Leases: how a writer keeps what it stored alive until it has tagged it. A writer's lease is a file
 * `lease-PID-HEX` in the layout's private `leases/` folder: one JSON header line (pid, host, time), then
 * one line per blob the writer stored or found already stored (`DIGEST MEDIATYPE`), each appended
 * before the blob is renamed into place or found present. gc, under the index lock, treats the digests
 * of every live lease as roots. The writer touches its lease while it holds it, and removes it after its
 * index.json update. A lease whose owner is not a live process here and that has not been touched for
 * `staleMs` is stale: gc ignores and removes it (as containerd's leases expire).
 */
export class LeaseFile {
  private readonly recorded = new Set<string>();
  private readonly heartbeat: NodeJS.Timeout;
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {
    this.heartbeat = setInterval(() => void utimes(path, new Date(), new Date()).catch(() => undefined), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  static async create(dir: string): Promise<LeaseFile> {
    await mkdir(dir, { recursive: true });
    const path = tempName(dir, 'lease');
    const fh = await open(path, 'ax', 0o644);
    await fh.write(`${JSON.stringify({ pid: process.pid, host: hostname(), time: Date.now() })}\n`);
    return new LeaseFile(path, fh);
  }

  /** Records a digest; returns once the line is in the file (visible to gc). */
  async add(digest: string, mediaType?: string): Promise<void> {
    if (this.recorded.has(digest)) return;
    this.recorded.add(digest);
    await this.fh.write(`${digest} ${mediaType ?? '-'}\n`);
  }

  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.fh.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }
}

const HEARTBEAT_MS = 60_000;
/** Default age past which a lease whose owner is not a live process here is stale. */
export const LEASE_STALE_MS = 10 * 60_000;
/** A lease untouched this long is stale whoever owns it (its pid may have been reused). */
const LEASE_MAX_IDLE_MS = 24 * 3600_000;
const LEASE_CAP = 16 << 20;

export interface LeaseScan {
  /** Digest → media type ('-' when the writer did not know it) of every live lease. */
  digests: Map<string, string>;
  /** Stale lease files (full paths). */
  stale: string[];
}

/**
 * Reads every lease in `dir`. Only names made by LeaseFile count; anything else there is left alone.
 * A lease that cannot be read (not a regular file, over the cap) is refused: gc must not guess.
 */
export async function scanLeases(dir: string, staleMs = LEASE_STALE_MS): Promise<LeaseScan> {
  const out: LeaseScan = { digests: new Map(), stale: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errno(err) === 'ENOENT') return out;
    throw new OciToolError('IO', `cannot list ${dir}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  }
  for (const name of names.sort()) {
    if (!name.startsWith('lease-') || !isTempName(name)) continue;
    const path = join(dir, name);
    const s = await lstat(path).catch(() => undefined);
    if (s === undefined) continue; // released since
    let raw: string;
    try {
      raw = (await readRegularFile(path, LEASE_CAP, `lease ${path}`, { noFollow: true })).toString('utf8');
    } catch (err) {
      if (errno((err as Error).cause) === 'ENOENT') continue;
      throw err;
    }
    const [head = '', ...lines] = raw.split('\n');
    let host: string | undefined;
    try {
      host = (JSON.parse(head) as { host?: unknown }).host as string | undefined;
    } catch {
      host = undefined; // header still being written
    }
    const pid = pidOfTempName(name)!;
    const idle = Date.now() - s.mtimeMs;
    const alive = host === hostname() && processAlive(pid);
    if (idle > LEASE_MAX_IDLE_MS || (!alive && idle > staleMs)) {
      out.stale.push(path);
      continue;
    }
    for (const line of lines) {
      const [digest, mediaType = '-'] = line.split(' ');
      if (digest !== undefined && isValidDigest(digest) && digest.includes(':')) out.digests.set(digest, mediaType);
    }
  }
  return out;
}
