/**
 * Editing an image without rebuilding it (crane mutate, regctl image mod): its config (labels, env,
 * entrypoint, cmd, user, workdir, ports, volumes, created) and its manifest annotations change, its
 * layers do not. Only the manifest (or index) and the config are read; the new config and manifest go
 * to the destination through the one graph copy, which finds the layers there (the same repository or
 * layout), mounts them (another repository of the registry), streams them (another registry) or copies
 * them (a layout or archive elsewhere). An index is edited image by image (every platform, or one), and
 * rewritten around the new digests; entries left as they were keep their bytes.
 */
import { fetchManifest, type ManifestNode } from '../content/graph.js';
import { canAddRoot, fetchBytes, underLease, type Fetcher, type ReadOnlyStore, type Store } from '../content/store.js';
import type { CopyEvent } from '../content/copy.js';
import type { Credential } from '../registry/auth/credentials.js';
import { parseReference, type ImageReference } from '../reference/transport.js';
import { MediaType, isImageConfigType, mediaTypeFor } from '../spec/media-types.js';
import { parseJson } from '../spec/parse.js';
import { platformMatches } from '../spec/platform.js';
import type { ContainerConfig, Descriptor, Platform } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { applyConfigChanges, type ConfigChanges } from './config.js';
import { ImageWriter } from './image-writer.js';

export interface MutateChanges {
  config?: ConfigChanges;
  /** Labels and environment variables (by name) to remove. */
  unsetLabels?: string[];
  unsetEnv?: string[];
  /** Manifest annotations to set (OCI manifests only). */
  annotations?: Record<string, string>;
  /** Seconds since the epoch for the config's `created`. */
  created?: number;
}

export interface MutateOptions extends MutateChanges {
  /**
   * `oci`: Docker schema 2 manifests and lists come out as OCI (what layouts want: see layoutFormat);
   * default: the media types stay as they are.
   */
  format?: 'oci';
  /** From an index, edit only this platform's image (the others stay as they are); default: every image. */
  platform?: Platform;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (event: CopyEvent) => void;
}

const MAX_DEPTH = 4;
const isoSeconds = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

/** Whether the changes change anything at all (none: the image is written as it is, same digest). */
function isEmpty(c: MutateChanges): boolean {
  const cfg = c.config ?? {};
  const some = (v: unknown): boolean => (Array.isArray(v) ? v.length > 0 : v !== undefined && (typeof v !== 'object' || v === null || Object.keys(v).length > 0));
  return !Object.values(cfg).some(some) && !some(c.unsetLabels) && !some(c.unsetEnv) && !some(c.annotations) && c.created === undefined;
}

/**
 * Edits the image `root` of `source` into `destination` (tagged `tag`, or listed untagged in a
 * layout); the new root's descriptor.
 */
export async function mutateImage(source: Fetcher & { readonly name?: string }, root: Descriptor, destination: Store, tag: string | undefined, opts: MutateOptions = {}): Promise<Descriptor> {
  return underLease(destination, async () => {
    const writer = new ImageWriter(destination, source);
    try {
      const node = await fetchManifest(source, root);
      const convert = opts.format === 'oci' && isDockerType(root.mediaType);
      const edited = isEmpty(opts) && !convert ? root : await edit(writer, source, node, opts, 0, { memo: new Map(), nodes: 0 });
      await writer.write(edited, {
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
      const described: Descriptor = root.platform ? { ...edited, platform: root.platform } : edited;
      if (tag !== undefined) await destination.tag(described, tag);
      else if (canAddRoot(destination)) await destination.addRoot(described);
      return edited;
    } finally {
      await writer.close();
    }
  });
}

/** Each manifest is edited once however often indexes list it; a hostile graph cannot make it more. */
interface EditBudget {
  memo: Map<string, Promise<Descriptor>>;
  nodes: number;
}
const MAX_NODES = 10_000;

function edit(writer: ImageWriter, source: Fetcher, node: ManifestNode, opts: MutateOptions, depth: number, budget: EditBudget): Promise<Descriptor> {
  const known = budget.memo.get(node.descriptor.digest);
  if (known) return known;
  if (++budget.nodes > MAX_NODES) return Promise.reject(new OciToolError('TOO_LARGE', `${node.descriptor.digest}: more than ${MAX_NODES} manifests below it`));
  const p = editNode(writer, source, node, opts, depth, budget);
  budget.memo.set(node.descriptor.digest, p);
  return p;
}

async function editNode(writer: ImageWriter, source: Fetcher, node: ManifestNode, opts: MutateOptions, depth: number, budget: EditBudget): Promise<Descriptor> {
  const what = node.descriptor.digest;
  if (node.parsed.kind === 'schema1') throw new OciToolError('UNSUPPORTED', `${what}: a schema 1 image cannot be edited in place: convert it first (ocitool convert)`);
  if (node.parsed.kind === 'index') {
    if (depth >= MAX_DEPTH) throw new OciToolError('UNSUPPORTED', `${what}: indexes nested too deep`);
    const doc = parseJson(node.bytes, `index ${what}`) as { manifests: Descriptor[] } & Record<string, unknown>;
    if (opts.annotations && Object.keys(opts.annotations).length > 0 && !isDockerType(node.descriptor.mediaType)) {
      doc.annotations = { ...((doc.annotations as Record<string, string> | undefined) ?? {}), ...opts.annotations };
    }
    let changed = false;
    const manifests: Descriptor[] = [];
    for (const entry of doc.manifests) {
      const wanted = (!opts.platform || (entry.platform !== undefined && platformMatches(opts.platform, entry.platform))) && !isAttestation(entry);
      // Entries that are no image (attestations listed in an index) stay as they are.
      const child = wanted ? await fetchManifest(source, entry) : undefined;
      if (!child || (child.parsed.kind !== 'manifest' && child.parsed.kind !== 'index')) {
        manifests.push(entry);
        continue;
      }
      const edited = await edit(writer, source, child, opts, depth + 1, budget);
      changed ||= edited.digest !== entry.digest;
      manifests.push({ ...entry, mediaType: edited.mediaType, digest: edited.digest, size: edited.size });
    }
    if (opts.platform && !doc.manifests.some((e) => e.platform && platformMatches(opts.platform!, e.platform))) {
      throw new OciToolError('NOT_FOUND', `${what}: no image for that platform in the index`);
    }
    const toOci = opts.format === 'oci' && isDockerType(node.descriptor.mediaType);
    if (!changed && !doc.annotations && !toOci) return node.descriptor;
    const mediaType = toOci ? MediaType.OciIndex : node.descriptor.mediaType;
    return writer.document(mediaType, Buffer.from(JSON.stringify({ ...doc, ...(doc.mediaType !== undefined ? { mediaType } : {}), manifests })));
  }
  const manifest = parseJson(node.bytes, `manifest ${what}`) as { config: Descriptor; annotations?: Record<string, string> } & Record<string, unknown>;
  const docker = isDockerType(node.descriptor.mediaType);
  if (docker && opts.format !== 'oci' && opts.annotations && Object.keys(opts.annotations).length > 0) {
    throw new OciToolError('UNSUPPORTED', `${what}: a Docker schema 2 manifest has no annotations (convert it to OCI first: ocitool convert)`);
  }
  // Only image configs are edited: a manifest of something else (a Helm chart, an SBOM) stays as it is.
  if (!isImageConfigType(manifest.config.mediaType)) return node.descriptor;
  const configBytes = await fetchBytes(source, manifest.config);
  const config = parseJson(configBytes, `config ${manifest.config.digest}`) as { config?: ContainerConfig; created?: string } & Record<string, unknown>;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new OciToolError('INVALID_JSON', `config ${manifest.config.digest}: not a JSON object`);
  const env = config.config?.Env;
  if (env !== undefined && env !== null && (!Array.isArray(env) || !env.every((e) => typeof e === 'string'))) throw new OciToolError('INVALID_JSON', `config ${manifest.config.digest}: Env is not a list of strings`);
  const labels = config.config?.Labels;
  if (labels !== undefined && labels !== null && (typeof labels !== 'object' || Array.isArray(labels))) throw new OciToolError('INVALID_JSON', `config ${manifest.config.digest}: Labels is not an object`);
  const runtime = applyConfigChanges(config.config ?? undefined, opts.config ?? {}).config;
  for (const k of opts.unsetLabels ?? []) if (runtime.Labels) delete runtime.Labels[k];
  if (runtime.Labels && Object.keys(runtime.Labels).length === 0) delete runtime.Labels;
  if (opts.unsetEnv?.length && runtime.Env) runtime.Env = runtime.Env.filter((e) => !opts.unsetEnv!.includes(e.split('=', 1)[0]!));
  const newConfig = { ...config, config: runtime, ...(opts.created !== undefined ? { created: isoSeconds(opts.created) } : {}) };
  const toOci = opts.format === 'oci' && docker;
  const configDesc = writer.document(toOci ? MediaType.OciConfig : manifest.config.mediaType, Buffer.from(JSON.stringify(newConfig)));
  const { annotations: _a, ...rest } = manifest.config;
  const annotations = { ...(manifest.annotations ?? {}), ...(opts.annotations ?? {}) };
  const mediaType = toOci ? MediaType.OciManifest : node.descriptor.mediaType;
  const layers = toOci ? (manifest.layers as Descriptor[]).map((l) => ({ ...l, mediaType: mediaTypeFor(l.mediaType, 'oci') })) : manifest.layers;
  const newManifest = {
    ...manifest,
    ...(manifest.mediaType !== undefined ? { mediaType } : {}),
    config: { ...rest, mediaType: configDesc.mediaType, digest: configDesc.digest, size: configDesc.size, ...(manifest.config.annotations ? { annotations: manifest.config.annotations } : {}) },
    layers,
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  return writer.document(mediaType, Buffer.from(JSON.stringify(newManifest)));
}

const isDockerType = (mt: string): boolean => mt === MediaType.DockerManifest || mt === MediaType.DockerManifestList;
const isAttestation = (d: Descriptor): boolean => d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';

export interface MutateToOptions extends MutateOptions {
  /** Where the edited image goes (default: the source reference itself). */
  to?: string | ImageReference;
  srcCredential?: Credential;
  dstCredential?: Credential;
  insecure?: boolean;
}

/**
 * mutateImage between references: `ref` is read, the edited image is written to `opts.to` (default
 * `ref` itself: the tag moves to the edited image).
 *
 *   await mutate('docker://registry.example/team/app:v1', { config: { labels: { tier: 'web' } } });
 */
export async function mutate(ref: string | ImageReference, opts: MutateToOptions = {}): Promise<Descriptor> {
  const { openStore, writeTo } = await import('../transport/open.js');
  const { destinationTag } = await import('../transport/copy.js');
  const asRef = (r: string | ImageReference): ImageReference => (typeof r === 'string' ? parseReference(r) : r);
  const srcRef = asRef(ref);
  const dstRef = opts.to !== undefined ? asRef(opts.to) : srcRef;
  const { to: _to, srcCredential, dstCredential, insecure, ...rest } = opts;
  const src = await openStore(srcRef, { ...(insecure ? { insecure } : {}), ...(srcCredential ? { credential: srcCredential } : {}) });
  try {
    const root = await src.store.resolve(src.reference ?? '');
    const tag = destinationTag(dstRef);
    const credential = dstCredential ?? (opts.to === undefined ? srcCredential : undefined);
    // Into a layout or an oci-archive, Docker media types become OCI (as copy does; readers refuse them there).
    const format = rest.format ?? (dstRef.transport === 'oci' || dstRef.transport === 'oci-archive' ? 'oci' : undefined);
    return await writeTo(dstRef, { ...(insecure ? { insecure } : {}), ...(credential ? { credential } : {}) }, (dest) => mutateImage(src.store as ReadOnlyStore, root, dest.store, tag, { ...rest, ...(format ? { format } : {}) }));
  } finally {
    await src.close?.();
  }
}
