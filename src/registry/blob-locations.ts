import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { atomicWriteFile } from '../util/fs.js';

/** How many digests the cache remembers (the oldest are forgotten first). */
const MAX_DIGESTS = 20_000;
const MAX_REPOS_PER_DIGEST = 8;

/**
 * Where blobs were last seen: digest → `host/repository` list, kept across runs in
 * `$OCITOOL_CACHE_DIR` (default `$XDG_CACHE_HOME/ocitool` or `~/.cache/ocitool`), like skopeo's blob info
 * cache. A push asks a registry to mount a blob from another repository it is known to be in,
 * instead of uploading it again.
 */
export class BlobLocations {
  private map = new Map<string, string[]>();
  private loading?: Promise<void>;
  private dirty = false;

  constructor(readonly file: string | undefined = defaultFile()) {}

  /** Reads the file once; concurrent callers share the one read. */
  private load(): Promise<void> {
    this.loading ??= this.read();
    return this.loading;
  }

  private async read(): Promise<void> {
    if (!this.file) return;
    try {
      const v = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, string[]>;
      for (const [d, repos] of Object.entries(v)) if (Array.isArray(repos)) this.map.set(d, repos.filter((r) => typeof r === 'string'));
    } catch {
      /* no cache yet, or unreadable: start empty */
    }
  }

  async record(host: string, repository: string, digest: string): Promise<void> {
    await this.load();
    const key = `${host}/${repository}`;
    const repos = this.map.get(digest) ?? [];
    if (repos[0] === key) return;
    this.map.delete(digest); // re-insert: most recent last
    this.map.set(digest, [key, ...repos.filter((r) => r !== key)].slice(0, MAX_REPOS_PER_DIGEST));
    while (this.map.size > MAX_DIGESTS) this.map.delete(this.map.keys().next().value!);
    this.dirty = true;
  }

  /** Other repositories on `host` that hold `digest`, most recent first. */
  async candidates(host: string, repository: string, digest: string): Promise<string[]> {
    await this.load();
    const prefix = `${host}/`;
    return (this.map.get(digest) ?? []).filter((r) => r.startsWith(prefix) && r !== `${host}/${repository}`).map((r) => r.slice(prefix.length));
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.file) return;
    await mkdir(dirname(this.file), { recursive: true });
    await atomicWriteFile(this.file, JSON.stringify(Object.fromEntries(this.map)), dirname(this.file));
    this.dirty = false;
  }
}

/** ocitool's cache folder: `$OCITOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/ocitool`, else `~/.cache/ocitool`. */
export function ocitoolCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OCITOOL_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ocitool');
}

function defaultFile(): string | undefined {
  return join(ocitoolCacheDir(), 'blob-locations.json');
}

/** The process-wide cache. */
export const blobLocations = new BlobLocations();
