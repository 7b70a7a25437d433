import type { Readable } from 'node:stream';
import type { Descriptor } from '../spec/types.js';
import { MAX_JSON_BYTES } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';

/**
 * The small interfaces every place an image can live implements (an OCI layout, a registry
 * repository, an archive). Algorithms take the narrowest one they need.
 */
export interface Fetcher {
  /** The blob's bytes, verified against `desc` (size and digest) as they are read. */
  fetch(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<Readable>;
}

export interface ExistenceChecker {
  exists(desc: Descriptor): Promise<boolean>;
}

export interface Pusher {
  /** Stores `content`, which must match `desc`; a mismatch stores nothing. */
  push(desc: Descriptor, content: Readable, opts?: { signal?: AbortSignal }): Promise<void>;
}

export interface PushStreamOptions {
  signal?: AbortSignal;
  /**
   * Runs once the last byte is in and the digest is known, before the blob becomes visible under it
   * (before a layout's rename, before a registry's final PUT): throwing there stores nothing. A
   * layer writer checks its diffID here.
   */
  check?: (put: { digest: string; size: number }) => void;
}

/**
 * A store that takes a blob whose digest is not known until its last byte (a layout names it as it
 * hashes; a registry upload carries the digest on its final PUT): what lets a layer stream into its
 * destination as it is compressed, with no temp copy.
 */
export interface StreamPusher {
  pushStream(content: Readable, opts?: PushStreamOptions): Promise<{ digest: string; size: number }>;
}

/** Whether a store can take a stream of unknown digest (see StreamPusher). */
export const canPushStream = (s: object): s is StreamPusher => typeof (s as Partial<StreamPusher>).pushStream === 'function';

/** A store that lists untagged roots (a layout's index.json entries without a name). */
export interface RootLister {
  addRoot(desc: Descriptor): Promise<void>;
}
export const canAddRoot = (s: object): s is RootLister => typeof (s as Partial<RootLister>).addRoot === 'function';

/** A store that lists its tags (a registry repository). */
export interface TagLister {
  listTags(): Promise<string[]>;
}
export const canListTags = (s: object): s is TagLister => typeof (s as Partial<TagLister>).listTags === 'function';

/** A store that lists the images it holds as index entries (an archive; a layout has readIndex). */
export interface ImageLister {
  list(): Promise<Descriptor[]>;
}
export const canListImages = (s: object): s is ImageLister => typeof (s as Partial<ImageLister>).list === 'function';

/** A repository in a registry: blobs of another repository on the same host can be mounted into it. */
export interface RemoteRepository {
  readonly host: string;
  readonly repository: string;
  /** Names a repository to mount blobs from (before the cache of where blobs were seen). */
  addMountSource(repository: string): void;
}
export const isRemoteRepository = (s: object): s is RemoteRepository => typeof (s as Partial<RemoteRepository>).addMountSource === 'function' && typeof (s as Partial<RemoteRepository>).host === 'string';

/** A store that can link a blob it already holds elsewhere instead of receiving it (registry mounts). */
export interface Mounter {
  /** Returns where the blob came from, or undefined if it must be pushed. */
  mount(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<{ from: string } | undefined>;
}

export interface Resolver {
  /**
   * Resolves a tag or digest to the descriptor of a manifest or index. `read`: the caller fetches
   * the manifest next, so a store that can answer both in one request (a registry's GET) does.
   */
  resolve(reference: string, opts?: { read?: boolean }): Promise<Descriptor>;
}

export interface Tagger {
  tag(desc: Descriptor, reference: string): Promise<void>;
}
export const isTagger = (s: object): s is Tagger => typeof (s as Partial<Tagger>).tag === 'function';

/**
 * A store that stores a manifest and tags it in one step (a registry: one PUT by tag, where push
 * and tag would be a PUT by digest and another by tag). The bytes are checked against `desc` first.
 */
export interface TaggedPusher {
  pushTagged(desc: Descriptor, bytes: Buffer, tag: string, opts?: { signal?: AbortSignal }): Promise<void>;
}
export const canPushTagged = (s: object): s is TaggedPusher => typeof (s as Partial<TaggedPusher>).pushTagged === 'function';

export interface ReadOnlyStore extends Fetcher, ExistenceChecker, Resolver {
  /** Names this store in messages (`oci:/path`, `docker://host/repo`). */
  readonly name: string;
}

export interface Store extends ReadOnlyStore, Pusher, Tagger {}

/**
 * A store that can hold what a writer stores until the writer has tagged it, against a concurrent gc
 * (a layout's leases). Writers that store blobs and then tag run under `withLease`.
 */
export interface Leaser {
  withLease<T>(fn: () => Promise<T>): Promise<T>;
}

/** A store that holds single images, never an index (a docker archive being written). */
export interface SingleImageStore {
  readonly singleImagesOnly: true;
}

export const holdsSingleImagesOnly = (s: object): s is SingleImageStore => (s as Partial<SingleImageStore>).singleImagesOnly === true;

/** Runs `fn` under the store's lease when it has leases, else as it is. */
export function underLease<T>(store: object, fn: () => Promise<T>): Promise<T> {
  return typeof (store as Partial<Leaser>).withLease === 'function' ? (store as Leaser).withLease(fn) : fn();
}

/** A store that knows its roots and can list and delete its blobs (a layout): what gc needs. */
export interface Collectable extends Fetcher {
  readonly name: string;
  roots(): Promise<Descriptor[]>;
  listBlobs(): AsyncIterable<{ digest: string; size: number }>;
  deleteBlob(digest: string): Promise<void>;
}

/** Reads a whole (small) blob into memory, verified; refuses anything over `cap` bytes. */
export async function fetchBytes(store: Fetcher, desc: Descriptor, cap = MAX_JSON_BYTES): Promise<Buffer> {
  if (desc.size > cap) {
    throw new OciToolError('TOO_LARGE', `${desc.digest}: ${desc.size} bytes is over the ${cap}-byte limit for documents read into memory`);
  }
  return readCapped(await store.fetch(desc), cap, desc.digest);
}

/** Reads a whole stream into memory, refusing (and destroying the stream) past `cap` bytes. */
export async function readCapped(stream: Readable, cap: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > cap) {
      stream.destroy();
      throw new OciToolError('TOO_LARGE', `${what}: over the ${cap}-byte limit for documents read into memory`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
