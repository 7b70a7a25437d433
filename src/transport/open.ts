import type { ImageReference } from '../reference/transport.js';
import { formatReference } from '../reference/transport.js';
import { OciLayout } from '../layout/layout.js';
import type { ReadOnlyStore, Store } from '../content/store.js';
import { OciToolError } from '../util/errors.js';
import type { Credential } from '../registry/auth/credentials.js';

/** An opened place: a store that can be read (`ReadOnlyStore`), or, opened for writing, written (`Store`). */
export interface OpenedStore<S extends ReadOnlyStore = ReadOnlyStore> {
  store: S;
  /** The tag or digest inside the store that the reference names, if any. */
  reference?: string;
  /** The layout, when the store is one (commands like gc and verify need its extra powers). */
  layout?: OciLayout;
  /** For stores written in one go (archives): make the result visible, or drop it. */
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
      const layout = opts.create ? await OciLayout.init(ref.dir) : await OciLayout.open(ref.dir);
      const reference = ref.digest ?? ref.tag;
      return reference === undefined ? { store: layout, layout } : { store: layout, layout, reference };
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
