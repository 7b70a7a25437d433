/**
 * Mirroring many images (`sync`, `copy --all-tags`): a plan of source → destination references, then
 * each image through the one copy, several at once. An image whose destination already names the
 * source's digest is skipped before any upload or manifest PUT (one HEAD at each end), so a rerun of an
 * unchanged sync writes nothing. A failure is recorded and the rest go on; the result counts them.
 *
 * Sources: a repository (`docker://HOST/REPO`: every tag), or a skopeo sync YAML file:
 *
 *   registry.example:
 *     images: { busybox: [], redis: ["7.0", "sha256:…"] }   # [] means every tag
 *     images-by-tag-regex: { nginx: '^1\.2[0-9]$' }
 *     tls-verify: false
 *     credentials: { username: u, password: p }
 *
 * Destinations: a registry prefix (`docker://HOST/PREFIX`: each image goes to PREFIX/REPO:TAG, the
 * source repository path appended whole), or a layout (`oci:DIR`: tags REPO:TAG).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Credential } from '../registry/auth/credentials.js';
import { parseDockerName, type DockerReference } from '../reference/docker-name.js';
import type { ImageReference } from '../reference/transport.js';
import type { Descriptor, Platform } from '../spec/types.js';
import { OciToolError, isOciToolError } from '../util/errors.js';
import { parseYaml, type YamlValue } from '../util/yaml.js';
import { copy, type CopyOptions } from './copy.js';
import { openStore } from './open.js';

/** One image to mirror. */
export interface SyncImage {
  src: ImageReference & { transport: 'docker' };
  dst: ImageReference;
  /** How it is named in messages: `HOST/REPO:TAG`. */
  name: string;
  /** Source registry settings (from the YAML file). */
  insecure?: boolean;
  credential?: Credential;
}

export interface SyncOptions {
  /** Images copied at once (default 4). */
  jobs?: number;
  /** Blob transfers per image (default 4). */
  concurrency?: number;
  /** Only this platform of indexes (default: all of them). */
  platform?: Platform;
  insecure?: boolean;
  srcCredential?: Credential;
  dstCredential?: Credential;
  /** List what would be copied and skipped; copy nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
  warn?: (message: string) => void;
  /** Each image as it is settled. */
  onImage?: (image: SyncImage, outcome: SyncOutcome) => void;
}

export type SyncOutcome = { status: 'copied'; digest: string } | { status: 'skipped'; digest: string } | { status: 'would-copy'; digest: string } | { status: 'failed'; error: Error };

export interface SyncResult {
  copied: number;
  skipped: number;
  failed: number;
  /** Per image, in plan order. */
  images: { image: SyncImage; outcome: SyncOutcome }[];
}

/** A sync YAML file is read whole; past this it is refused unread. */
const MAX_YAML_BYTES = 4 << 20;

const dockerRef = (ref: DockerReference): ImageReference & { transport: 'docker' } => ({ transport: 'docker', ref });
const nameOf = (r: DockerReference): string => `${r.domain}/${r.path}${r.digest ? `@${r.digest}` : `:${r.tag ?? 'latest'}`}`;

/** Where `src` goes under the destination `dst` (a registry prefix or a layout). */
export function destinationFor(src: DockerReference, dst: ImageReference): ImageReference {
  if (dst.transport === 'docker') {
    const path = dst.ref.path === '' ? src.path : `${dst.ref.path}/${src.path}`;
    return dockerRef({ domain: dst.ref.domain, path, ...(src.digest ? { digest: src.digest } : { tag: src.tag ?? 'latest' }) });
  }
  if (dst.transport === 'oci') return src.digest ? { transport: 'oci', dir: dst.dir } : { transport: 'oci', dir: dst.dir, tag: `${src.path}:${src.tag ?? 'latest'}` };
  throw new OciToolError('USAGE', `sync: the destination must be a registry (docker://HOST[/PREFIX]) or a layout (oci:DIR)`);
}

/** The tags of a repository, as source references. */
async function tagsOf(repo: DockerReference, opts: { insecure?: boolean; credential?: Credential; signal?: AbortSignal }): Promise<DockerReference[]> {
  const { store, close } = await openStore(dockerRef({ domain: repo.domain, path: repo.path }), { ...(opts.insecure ? { insecure: true } : {}), ...(opts.credential ? { credential: opts.credential } : {}) });
  try {
    const lister = store as unknown as { listTags?: () => Promise<string[]> };
    if (typeof lister.listTags !== 'function') throw new OciToolError('UNSUPPORTED', `${repo.domain}/${repo.path}: cannot list tags`);
    opts.signal?.throwIfAborted();
    return (await lister.listTags()).sort().map((tag) => ({ domain: repo.domain, path: repo.path, tag }));
  } finally {
    await close?.();
  }
}

/** The plan for every tag of one repository (`docker://HOST/REPO`) into `dst`. */
export async function planRepository(repo: DockerReference, dst: ImageReference, opts: { insecure?: boolean; credential?: Credential; signal?: AbortSignal } = {}): Promise<SyncImage[]> {
  if (repo.tag !== undefined && repo.tag !== 'latest') throw new OciToolError('USAGE', `${nameOf(repo)}: name a repository, without a tag: every tag is copied`);
  if (repo.digest !== undefined) throw new OciToolError('USAGE', `${nameOf(repo)}: name a repository, without a digest: every tag is copied`);
  return (await tagsOf(repo, opts)).map((src) => ({ src: dockerRef(src), dst: destinationFor(src, dst), name: nameOf(src) }));
}

/** `copy --all-tags`: every tag of `repo` to the same tag of the destination repository (or layout). */
export async function planAllTags(repo: DockerReference, dst: ImageReference, opts: { insecure?: boolean; credential?: Credential; signal?: AbortSignal } = {}): Promise<SyncImage[]> {
  const target = (src: DockerReference): ImageReference => {
    if (dst.transport === 'docker') return dockerRef({ domain: dst.ref.domain, path: dst.ref.path, tag: src.tag! });
    if (dst.transport === 'oci') return { transport: 'oci', dir: dst.dir, tag: src.tag! };
    throw new OciToolError('USAGE', 'copy --all-tags: the destination must be a registry repository (docker://HOST/REPO) or a layout (oci:DIR)');
  };
  return (await planRepository(repo, { transport: 'oci', dir: '' }, opts)).map((i) => ({ ...i, dst: target(i.src.ref) }));
}

const SYNC_KEYS = new Set(['images', 'images-by-tag-regex', 'tls-verify', 'credentials', 'cert-dir']);

/** The plan of a skopeo sync YAML file into `dst`. Tag lists and regexes are resolved against the registries. */
export async function planYaml(file: string, dst: ImageReference, opts: { warn?: (m: string) => void; signal?: AbortSignal } = {}): Promise<SyncImage[]> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new OciToolError('USAGE', `sync: ${file}: no such file (the source is a docker://HOST/REPO repository or a skopeo sync YAML file)`);
  if (st.size > MAX_YAML_BYTES) throw new OciToolError('TOO_LARGE', `${file}: over ${MAX_YAML_BYTES} bytes`);
  const doc = parseYaml(await readFile(file, 'utf8'), file);
  // The whole file is checked before any registry is asked; tag lists are then read several at once.
  const slots: { settings: Pick<SyncImage, 'insecure' | 'credential'>; images: DockerReference[] | (() => Promise<DockerReference[]>) }[] = [];
  if (doc === null) return [];
  if (!isMap(doc)) throw new OciToolError('USAGE', `${file}: expected a mapping of registry hosts`);
  for (const [host, entry] of Object.entries(doc)) {
    const where = `${file}: ${host}`;
    if (!isMap(entry)) throw new OciToolError('USAGE', `${where}: expected a mapping (images, images-by-tag-regex, tls-verify, credentials)`);
    for (const k of Object.keys(entry)) if (!SYNC_KEYS.has(k)) throw new OciToolError('USAGE', `${where}: unknown key "${k}" (known: ${[...SYNC_KEYS].join(', ')})`);
    if (entry['cert-dir'] !== undefined) opts.warn?.(`${where}: cert-dir is not read; trust the registry's CA with NODE_EXTRA_CA_CERTS`);
    const tls = entry['tls-verify'];
    if (tls !== undefined && tls !== 'true' && tls !== 'false') throw new OciToolError('USAGE', `${where}: tls-verify must be true or false`);
    // tls-verify: true holds even under --insecure; false relaxes this source only.
    const insecure = tls === 'false' ? true : tls === 'true' ? false : undefined;
    const credential = credentialOf(entry.credentials, where);
    const settings = { ...(insecure !== undefined ? { insecure } : {}), ...(credential ? { credential } : {}) };
    const list = (repo: DockerReference, keep: (tag: string) => boolean = () => true) => async (): Promise<DockerReference[]> =>
      (await tagsOf(repo, { ...settings, ...(opts.signal ? { signal: opts.signal } : {}) })).filter((t) => keep(t.tag!));
    const repoRef = (repo: string): DockerReference => {
      const r = parseRepository(host, repo, where);
      return { domain: r.domain, path: r.path };
    };
    const images = entry.images ?? {};
    if (!isMap(images)) throw new OciToolError('USAGE', `${where}: images must map repositories to lists of tags`);
    for (const [repo, tags] of Object.entries(images)) {
      const base = repoRef(repo);
      if (tags !== null && !Array.isArray(tags)) throw new OciToolError('USAGE', `${where}: images.${repo} must be a list of tags or digests`);
      if (tags === null || tags.length === 0) {
        slots.push({ settings, images: list(base) });
        continue;
      }
      slots.push({
        settings,
        images: tags.map((t) => {
          if (typeof t !== 'string' || t === '') throw new OciToolError('USAGE', `${where}: images.${repo}: every entry must be a tag or a digest`);
          return parseRepository(host, `${repo}${t.includes(':') ? '@' : ':'}${t}`, where);
        }),
      });
    }
    const byRegex = entry['images-by-tag-regex'] ?? {};
    if (!isMap(byRegex)) throw new OciToolError('USAGE', `${where}: images-by-tag-regex must map repositories to regular expressions`);
    for (const [repo, pattern] of Object.entries(byRegex)) {
      if (typeof pattern !== 'string') throw new OciToolError('USAGE', `${where}: images-by-tag-regex.${repo} must be a regular expression`);
      let re: RegExp;
      try {
        re = new RegExp(pattern);
      } catch (e) {
        throw new OciToolError('USAGE', `${where}: images-by-tag-regex.${repo}: ${(e as Error).message}`);
      }
      slots.push({ settings, images: list(repoRef(repo), (t) => re.test(t)) });
    }
  }
  const listed = await inPool(slots.map((slot) => async () => (typeof slot.images === 'function' ? slot.images() : slot.images)), 8);
  return slots.flatMap((slot, i) => listed[i]!.map((src) => ({ src: dockerRef(src), dst: destinationFor(src, dst), name: nameOf(src), ...slot.settings })));
}

/** Runs `tasks`, at most `n` at once; their results in order (the first failure rejects). */
async function inPool<T>(tasks: (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

function isMap(v: YamlValue | undefined): v is { [key: string]: YamlValue } {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v);
}

function credentialOf(v: YamlValue | undefined, where: string): Credential | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isMap(v) || typeof v.username !== 'string' || typeof v.password !== 'string') throw new OciToolError('USAGE', `${where}: credentials must have a username and a password`);
  return { username: v.username, password: v.password, source: where };
}

function parseRepository(host: string, repo: string, where: string): DockerReference {
  let r: DockerReference;
  try {
    r = parseDockerName(`${host}/${repo}`);
  } catch (e) {
    throw new OciToolError('USAGE', `${where}: ${repo}: ${(e as Error).message}`);
  }
  // "busybox" under a host without a dot would otherwise be read as docker.io/HOST/busybox.
  if (r.domain !== host) throw new OciToolError('USAGE', `${where}: "${host}" is not a registry host (write it with a port or a dot, e.g. localhost:5000)`);
  return r;
}

/** What `ref` names, or undefined when it names nothing there (an untagged layout entry names nothing). */
async function digestAt(ref: ImageReference, opts: { insecure?: boolean; credential?: Credential }): Promise<Descriptor | undefined> {
  if (ref.transport === 'oci' && (ref.tag === undefined || !existsSync(join(ref.dir, 'index.json')))) return undefined;
  try {
    const { store, reference, close } = await openStore(ref, { ...(opts.insecure ? { insecure: true } : {}), ...(opts.credential ? { credential: opts.credential } : {}) });
    try {
      return await store.resolve(reference ?? '');
    } finally {
      await close?.();
    }
  } catch (err) {
    if (isOciToolError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

/** The repository or layout a destination reference names (without tag or digest). */
function placeOf(ref: ImageReference): string {
  return ref.transport === 'docker' ? `docker://${ref.ref.domain}/${ref.ref.path}` : ref.transport === 'oci' ? `oci:${ref.dir}` : JSON.stringify(ref);
}

/** Mirrors every image of `plan`; never throws for one image's failure (see the result). */
export async function syncImages(plan: SyncImage[], opts: SyncOptions = {}): Promise<SyncResult> {
  const jobs = Math.max(1, opts.jobs ?? 4);
  const results: SyncResult['images'] = plan.map((image) => ({ image, outcome: { status: 'failed', error: new Error('not run') } }));
  /** Copies in flight, by destination repository (or layout) and source digest. */
  const copying = new Map<string, Promise<unknown>>();
  const one = async (i: number): Promise<void> => {
    const image = plan[i]!;
    const srcOpts = { insecure: image.insecure ?? opts.insecure ?? false, ...((image.credential ?? opts.srcCredential) ? { credential: (image.credential ?? opts.srcCredential)! } : {}) };
    const dstOpts = { insecure: opts.insecure ?? false, ...(opts.dstCredential ? { credential: opts.dstCredential } : {}) };
    let outcome: SyncOutcome;
    try {
      opts.signal?.throwIfAborted();
      const source = await digestAt(image.src, srcOpts);
      if (!source) throw new OciToolError('NOT_FOUND', `${image.name}: not found`);
      const there = await digestAt(image.dst, dstOpts);
      if (there?.digest === source.digest) outcome = { status: 'skipped', digest: source.digest };
      else if (opts.dryRun) outcome = { status: 'would-copy', digest: source.digest };
      else {
        // The digest just seen, not the tag again: a tag moved meanwhile does not mix two images.
        const pinned = dockerRef({ domain: image.src.ref.domain, path: image.src.ref.path, digest: source.digest });
        const copyOpts: CopyOptions = {
          ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
          ...(opts.platform ? { platform: opts.platform } : {}),
          // Each end by its own setting: a source's tls-verify: false never relaxes the destination.
          srcInsecure: srcOpts.insecure,
          dstInsecure: dstOpts.insecure,
          ...(srcOpts.credential ? { srcCredential: srcOpts.credential } : {}),
          ...(dstOpts.credential ? { dstCredential: dstOpts.credential } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.warn ? { warn: opts.warn } : {}),
        };
        // Two tags of one image into one repository: the second waits for the first copy, then finds
        // everything there and only puts its tag (two copies of one graph at once race in the registry).
        const key = `${placeOf(image.dst)} ${source.digest}`;
        const before = copying.get(key);
        if (before) await before.catch(() => undefined);
        const copied = copy(pinned, image.dst, copyOpts);
        copying.set(key, copied);
        const { descriptor } = await copied.finally(() => {
          if (copying.get(key) === copied) copying.delete(key);
        });
        outcome = { status: 'copied', digest: descriptor.digest };
      }
    } catch (error) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      outcome = { status: 'failed', error: error as Error };
    }
    results[i] = { image, outcome };
    opts.onImage?.(image, outcome);
  };
  await inPool(plan.map((_, i) => () => one(i)), jobs);
  const count = (s: SyncOutcome['status']): number => results.filter((r) => r.outcome.status === s).length;
  return { copied: count('copied') + count('would-copy'), skipped: count('skipped'), failed: count('failed'), images: results };
}
