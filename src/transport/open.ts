import { lstat, readdir, rmdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ImageReference } from '../reference/transport.js';
import { formatReference } from '../reference/transport.js';
import { OciLayout, PRIVATE_DIR } from '../layout/layout.js';
import type { ReadOnlyStore, Store } from '../content/store.js';
import { OciToolError, errno } from '../util/errors.js';
import type { Credential } from '../registry/auth/credentials.js';

/** An opened place: a store that can be read (`ReadOnlyStore`), or, opened for writing, written (`Store`). */
export interface OpenedStore<S extends ReadOnlyStore = ReadOnlyStore> {
  store: S;
  /** The tag or digest inside the store that the reference names, if any. */
  reference?: string;
  /** The layout, when the store is one (commands like gc and verify need its extra powers). */
  layout?: OciLayout;
  /**
   * For stores written in one go (archives): make the result visible, or drop it. A layout this
   * opening created is dropped too while nothing is stored in it.
   */
  commit?: () => Promise<void>;
  abort?: () => Promise<void>;
  /** Releases what opening took (temp files of a compressed archive). */
  close?: () => Promise<void>;
}

export interface OpenOptions {
  /** Open for writing: create a layout that does not exist; ask a registry for push access. */
  create?: boolean;
  /** Registry credentials (`--creds`); otherwise they come from the usual config files. */
  credential?: Credential;
  /** Allow plain HTTP and unverified TLS to registries. */
  insecure?: boolean;
}

/**
 * The one place that branches on the transport: opens the store a reference names. Everything after
 * this works on the Store interfaces.
 */
export function openStore(ref: ImageReference, opts: OpenOptions & { create: true }): Promise<OpenedStore<Store>>;
export function openStore(ref: ImageReference, opts?: OpenOptions): Promise<OpenedStore>;
export async function openStore(ref: ImageReference, opts: OpenOptions = {}): Promise<OpenedStore<Store> | OpenedStore> {
  switch (ref.transport) {
    case 'oci': {
      const made = opts.create ? await madeFor(ref.dir) : undefined;
      const layout = opts.create ? await OciLayout.init(ref.dir) : await OciLayout.open(ref.dir);
      const reference = ref.digest ?? ref.tag;
      return { store: layout, layout, ...(reference !== undefined ? { reference } : {}), ...(made !== undefined ? { abort: () => removeUnused(layout, made) } : {}) };
    }
    case 'docker': {
      const { domain, path, tag, digest } = ref.ref;
      // Loaded on demand: the HTTP stack is most of the CLI's start-up time, and layouts do not need it.
      const [{ resolveCredentials }, { RegistryStore }] = await Promise.all([import('../registry/auth/credentials.js'), import('../registry/store.js')]);
      const credential = await resolveCredentials(domain, opts.credential);
      const store = new RegistryStore(domain, path, { push: opts.create ?? false, ...(credential ? { credential } : {}), ...(opts.insecure ? { insecure: true } : {}) });
      const reference = digest ?? tag;
      return reference === undefined ? { store } : { store, reference };
    }
    case 'dir': {
      if (opts.create) throw new OciToolError('UNSUPPORTED', `${formatReference(ref)}: dir: is a source only; write to oci:DIR instead`);
      const { DirStore } = await import('./dir-store.js');
      const store = new DirStore(ref.dir);
      return { store };
    }
    case 'docker-archive': {
      const [{ DockerArchiveSource }, { DockerArchiveWriter }] = await Promise.all([import('../archive/source.js'), import('../archive/writer.js')]);
      if (opts.create) {
        const { checkArchiveTarget } = await import('../archive/writer.js');
        await checkArchiveTarget(ref.file);
        const w = new DockerArchiveWriter(ref.file);
        return { store: w, commit: () => w.commit(), abort: () => w.abort() };
      }
      const src = await DockerArchiveSource.open(ref.file, ref.ref);
      return { store: src, close: src.close };
    }
    case 'oci-archive': {
      const [{ OciArchiveSource }, { OciArchiveWriter }] = await Promise.all([import('../archive/source.js'), import('../archive/writer.js')]);
      if (opts.create) {
        const w = await OciArchiveWriter.create(ref.file);
        return { store: w.layout, commit: () => w.commit(), abort: () => w.abort() };
      }
      const src = await OciArchiveSource.open(ref.file);
      return { store: src, close: src.close, ...(ref.tag !== undefined ? { reference: ref.tag } : {}) };
    }
  }
}

/**
 * Opens `ref` for writing, runs `write` on it, and then makes the result visible (an archive is
 * committed) or, when `write` fails, drops it (an archive is removed), the failure passed on.
 */
export async function writeTo<T>(ref: ImageReference, opts: Omit<OpenOptions, 'create'>, write: (to: OpenedStore<Store>) => Promise<T>): Promise<T> {
  const to = await openStore(ref, { ...opts, create: true });
  try {
    const result = await write(to);
    await to.commit?.();
    if (ref.transport === 'docker') {
      // Where the new blobs now live, for mounts by later pushes (a build's cached layer into
      // another repository). A cache: failing to save loses nothing.
      const { blobLocations } = await import('../registry/blob-locations.js');
      await blobLocations.save().catch(() => undefined);
    }
    return result;
  } catch (err) {
    await to.abort?.();
    throw err;
  } finally {
    await to.close?.();
  }
}

/**
 * What opening `dir` as a new layout makes: the outermost folder that does not exist yet (`dir`
 * itself or an ancestor), `keep: true` for an empty folder that exists (its layout files are made,
 * not the folder), or undefined for a folder with something in it (an existing layout).
 */
async function madeFor(dir: string): Promise<{ from: string; keep?: true } | undefined> {
  const at = resolve(dir);
  try {
    return (await readdir(at)).length === 0 ? { from: at, keep: true } : undefined;
  } catch (err) {
    if (errno(err) !== 'ENOENT') return undefined;
  }
  let from = at;
  for (let d = dirname(at); d !== from; from = d, d = dirname(d)) {
    try {
      await lstat(d);
      break;
    } catch (err) {
      if (errno(err) !== 'ENOENT') break;
    }
  }
  return { from };
}

/**
 * Removes a layout that this process created (and the folders made for it, up to `made.from`; an
 * empty folder that was there stays) while it holds nothing: no tag or root, no blob, no writer's
 * lease or temp file. Only known names are unlinked and folders are removed with rmdir, so anything
 * another writer has put there since stays (the first folder that is not empty stops the removal).
 */
async function removeUnused(layout: OciLayout, made: { from: string; keep?: true }): Promise<void> {
  const dir = layout.dir;
  const empty = async (rel: string): Promise<boolean> => (await readdir(join(dir, rel)).catch((err: unknown) => (errno(err) === 'ENOENT' ? [] : ['?']))).length === 0;
  try {
    if ((await layout.roots()).length > 0) return;
    for (const rel of ['blobs/sha256', `${PRIVATE_DIR}/leases`, `${PRIVATE_DIR}/tmp`]) if (!(await empty(rel))) return;
    const steps: [rel: string, remove: (p: string) => Promise<void>][] = [
      [`${PRIVATE_DIR}/leases`, rmdir],
      [`${PRIVATE_DIR}/tmp`, rmdir],
      ['blobs/sha256', rmdir],
      ['blobs', rmdir],
      ['oci-layout', unlink],
      ['index.json', unlink],
      [PRIVATE_DIR, rmdir],
    ];
    for (const [rel, remove] of steps) {
      await remove(join(dir, rel)).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT') throw err;
      });
    }
    if (made.keep) return;
    for (let d = dir; ; d = dirname(d)) {
      await rmdir(d);
      if (d === made.from || dirname(d) === d) return;
    }
  } catch {
    // Not empty after all (another writer), or not ours to remove: left as it is.
  }
}
