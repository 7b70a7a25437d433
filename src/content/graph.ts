import type { Descriptor, ImageConfig } from '../spec/types.js';
import { MediaType, isImageConfigType, isManifestType } from '../spec/media-types.js';
import { checkImageConfig, parseJson, parseManifest, type ParsedManifest } from '../spec/parse.js';
import { fetchBytes, type Fetcher } from './store.js';

/** A manifest-like node read from a store: its raw bytes and what they parse to. */
export interface ManifestNode {
  descriptor: Descriptor;
  bytes: Buffer;
  parsed: ParsedManifest;
}

/** Reads and parses a manifest or index (verified, size-capped). */
export async function fetchManifest(store: Fetcher & { readonly name?: string }, desc: Descriptor): Promise<ManifestNode> {
  const bytes = await fetchBytes(store, desc);
  const parsed = parseManifest(bytes, `manifest ${desc.digest}`, desc.mediaType);
  return { descriptor: desc, bytes, parsed };
}

/** Reads and checks an image config. */
export async function fetchConfig(store: Fetcher, desc: Descriptor): Promise<ImageConfig> {
  const bytes = await fetchBytes(store, desc);
  return checkImageConfig(parseJson(bytes, `config ${desc.digest}`), `config ${desc.digest}`);
}

/**
 * The children of a parsed node: an index's manifests, a manifest's config and layers, and the subject
 * of either. Schema 1 layers have no known size (size -1).
 */
export function childrenOf(parsed: ParsedManifest): Descriptor[] {
  switch (parsed.kind) {
    case 'index':
      return [...parsed.index.manifests, ...(parsed.index.subject ? [parsed.index.subject] : [])];
    case 'manifest':
      return [parsed.manifest.config, ...parsed.manifest.layers, ...(parsed.manifest.subject ? [parsed.manifest.subject] : [])];
    case 'schema1':
      return parsed.manifest.fsLayers.map((l) => ({ mediaType: MediaType.DockerLayerGzip, digest: l.blobSum, size: -1 }));
  }
}

/** Successors of any descriptor: fetches and parses it if it is a manifest-like node, else none. */
export async function successors(store: Fetcher, desc: Descriptor): Promise<Descriptor[]> {
  if (!isManifestType(desc.mediaType)) return [];
  return childrenOf((await fetchManifest(store, desc)).parsed);
}

export interface WalkVisit {
  descriptor: Descriptor;
  /** The parent descriptor (undefined for roots). */
  parent?: Descriptor;
  /** Set for manifest-like nodes that were read. */
  node?: ManifestNode;
}

export interface WalkOptions {
  /** Called for every node, once per digest, parents before their children. */
  visit?: (v: WalkVisit) => Promise<void> | void;
  /** Called when a manifest-like node cannot be read or parsed; rethrows by default. */
  onError?: (desc: Descriptor, err: unknown) => void;
  /** Whether to descend into a node (default: every manifest-like node). */
  descend?: (desc: Descriptor) => boolean;
  concurrency?: number;
}

/**
 * Walks the graph below `roots`, visiting each digest once. Manifest-like nodes are fetched and
 * parsed; the walk descends into their children. Returns the set of digests reached.
 */
export async function walk(store: Fetcher, roots: Descriptor[], opts: WalkOptions = {}): Promise<Set<string>> {
  const seen = new Set<string>();
  const limit = Math.max(1, opts.concurrency ?? 8);
  const queue: WalkVisit[] = roots.map((descriptor) => ({ descriptor }));
  const running = new Set<Promise<void>>();
  let failure: unknown;
  const step = async (v: WalkVisit): Promise<void> => {
    const { descriptor } = v;
    const descend = isManifestType(descriptor.mediaType) && (opts.descend?.(descriptor) ?? true);
    if (descend) {
      try {
        v.node = await fetchManifest(store, descriptor);
      } catch (err) {
        if (!opts.onError) throw err;
        opts.onError(descriptor, err);
      }
    }
    await opts.visit?.(v);
    if (v.node) for (const child of childrenOf(v.node.parsed)) queue.push({ descriptor: child, parent: descriptor });
  };
  while ((queue.length > 0 || running.size > 0) && failure === undefined) {
    while (queue.length > 0 && running.size < limit) {
      const v = queue.shift()!;
      if (seen.has(v.descriptor.digest)) continue;
      seen.add(v.descriptor.digest);
      const p: Promise<void> = step(v).then(
        () => void running.delete(p),
        (err: unknown) => {
          running.delete(p);
          failure ??= err;
        },
      );
      running.add(p);
    }
    if (running.size > 0) await Promise.race(running);
  }
  if (failure !== undefined) {
    await Promise.allSettled(running);
    throw failure;
  }
  return seen;
}

/** Is this descriptor an image config ocitool can read (OCI or Docker)? */
export const isConfig = (d: Descriptor): boolean => isImageConfigType(d.mediaType);
