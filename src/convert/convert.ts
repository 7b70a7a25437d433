/**
 * Converting copies: the graph below a root copied from one store to another while manifests change
 * family (Docker schema 2 ↔ OCI), layers change compression, and schema 1 images become schema 2 or
 * OCI. What needs no change is copied as it is (by copyGraph: mounts, skips, verification), so a
 * conversion that changes nothing is an ordinary copy.
 *
 * - Docker ↔ OCI: manifests, indexes and media types are renamed; a config keeps its bytes (OCI
 *   readers ignore Docker's extra fields), so its digest (the image ID) and a round trip are kept.
 * - Recompression decompresses each layer (checking it against the config's diff_id), compresses it
 *   to a temp file while hashing, and pushes that: layer digests change, diff_ids do not.
 * - Schema 1 is converted as containers/image converts it (see schema1.ts), each layer read once:
 *   stored at the destination while its diffID is computed.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, pipeline as pipelineCb } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { copyGraph, Limiter, type CopyGraphOptions } from '../content/copy.js';
import { fetchManifest } from '../content/graph.js';
import { fetchBytes, type ExistenceChecker, type Fetcher, type Mounter, type Pusher } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { HashingStream, digestOfStream, markVerified } from '../digest/verify.js';
import { Tap, asContentError, compressionOfMediaType, compressor, decompressor, detectCompression, peek, type Compression } from '../layer/compression.js';
import { MediaType, isForeignLayerType, isImageConfigType, isIndexType, isManifestType, isSchema1Type, mediaTypeFor } from '../spec/media-types.js';
import { checkImageConfig, parseJson } from '../spec/parse.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { knownDiffId, normalizeSchema1, readSchema1, schema1Config, schema1Layers, verifySchema1Signatures } from './schema1.js';
import { ociConfigFromDocker } from './oci-config.js';

export type Format = 'oci' | 'docker';

export interface ConvertOptions extends CopyGraphOptions {
  /** Media type family of the result (default: as the source is; schema 1 becomes OCI). */
  format?: Format;
  /** Layer compression of the result (default: as the source is; schema 1 layers stay gzip). */
  compression?: Compression;
  /** gzip or zstd level for recompressed layers. */
  level?: number;
  /** Convert a signed schema 1 manifest whose signatures do not verify (with a warning). */
  ignoreSignatures?: boolean;
  /** Told of things worth a warning. */
  warn?: (message: string) => void;
}

type Source = Fetcher & { readonly name?: string; blobSize?(digest: string): Promise<number | undefined> };
type Destination = Pusher & ExistenceChecker & Partial<Mounter> & Partial<Fetcher>;


/** The media type family a manifest-like type belongs to. */
export function formatOf(mediaType: string): Format {
  return mediaType.startsWith('application/vnd.docker.') ? 'docker' : 'oci';
}

/** The layer media type for a compression in a family (foreign layers keep their foreignness). */
function layerType(compression: Compression, format: Format, foreign: boolean): string {
  if (format === 'docker') {
    if (compression === 'zstd') throw new OciToolError('UNSUPPORTED', 'zstd layers have no Docker schema 2 media type: use --format oci, or --compression gzip');
    if (foreign) return compression === 'gzip' ? MediaType.DockerForeignLayerGzip : MediaType.DockerForeignLayer;
    return compression === 'gzip' ? MediaType.DockerLayerGzip : MediaType.DockerLayer;
  }
  if (foreign) return compression === 'gzip' ? MediaType.OciLayerNondistributableGzip : compression === 'zstd' ? MediaType.OciLayerNondistributableZstd : MediaType.OciLayerNondistributable;
  return compression === 'gzip' ? MediaType.OciLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

/** A descriptor with another media type, its other fields (and their order) kept. */
const retyped = (d: Descriptor, mediaType: string): Descriptor => ({ ...d, mediaType });

/**
 * A document with new members and media type. A document that did not state its media type keeps
 * not stating it while its type stays the same (so an unchanged document keeps its bytes); Docker
 * documents always state it.
 */
function withType<T extends object>(doc: T & { mediaType?: string }, mediaType: string, was: string, members: Partial<T>): T {
  const out: T & { mediaType?: string } = { ...doc, mediaType, ...members };
  if (doc.mediaType === undefined && mediaType === was && !mediaType.startsWith('application/vnd.docker.')) delete out.mediaType;
  return out;
}

/** The promise kept in `map` under `key`, made by `make` the first time: each piece of work once. */
function once<V>(map: Map<string, Promise<V>>, key: string, make: () => Promise<V>): Promise<V> {
  let p = map.get(key);
  if (!p) {
    p = make();
    map.set(key, p);
  }
  return p;
}

/** A destination that stores a stream under the digest it computes (a layout). */
const canPutBlob = (d: object): d is { putBlob(content: Readable): Promise<{ digest: string; size: number }> } => typeof (d as { putBlob?: unknown }).putBlob === 'function';

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

/**
 * Copies the graph below `root` from `src` to `dst`, converting as `opts` asks. Returns the root of
 * the result (the same descriptor when nothing had to change).
 */
export async function convertGraph(src: Source, dst: Destination, root: Descriptor, opts: ConvertOptions = {}): Promise<Descriptor> {
  const limiter = new Limiter(Math.max(1, opts.concurrency ?? 4));
  const emit = opts.onProgress ?? ((): void => undefined);
  const sig = opts.signal ? { signal: opts.signal } : {};
  const one: CopyGraphOptions = { concurrency: 1, ...sig, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
  const srcName = src.name ?? 'the source';
  let tmp: Promise<string> | undefined;
  const tempDir = (): Promise<string> => (tmp ??= mkdtemp(join(tmpdir(), 'ocitool-convert-')));
  const blobs = new Map<string, Promise<void>>();
  const layers = new Map<string, Promise<{ descriptor: Descriptor; diffId?: string }>>();
  const nodes = new Map<string, Promise<Descriptor>>();

  /** Copies a blob unchanged (once per digest). */
  const copyBlob = (desc: Descriptor): Promise<void> => {
    return once(blobs, desc.digest, () => limiter.run(() => copyGraph(src, dst, desc, one), desc.size));
  };

  /** Pushes a small document made here (config, manifest, index). */
  const pushBytes = async (mediaType: string, bytes: Buffer): Promise<Descriptor> => {
    const desc: Descriptor = { mediaType, digest: digestOf(bytes), size: bytes.length };
    if (await dst.exists(desc)) emit({ type: isManifestType(mediaType) ? 'manifest-skip' : 'blob-skip', descriptor: desc });
    else {
      await dst.push(desc, Readable.from([bytes]), sig);
      if (isManifestType(mediaType)) emit({ type: 'manifest-pushed', descriptor: desc });
    }
    return desc;
  };

  /** The diffID of a blob's content: read from the destination when it has the blob, else from the source. */
  const diffIdOf = async (desc: Descriptor): Promise<string> => {
    const known = knownDiffId(desc.digest);
    if (known) return known;
    const from = dst.fetch && (await dst.exists(desc)) ? (dst as Fetcher) : src;
    const stream = await from.fetch(desc, sig);
    return digestOfStream(stream, decompressor(detectCompression(await peek(stream))));
  };

  /**
   * A layer in the wanted compression and family. Unchanged bytes are copied (and, when `needDiffId`,
   * their diffID computed on the way); otherwise the layer is recompressed through a temp file.
   */
  const convertLayer = (desc: Descriptor, compression: Compression | undefined, format: Format, needDiffId: boolean, expectDiffId?: string): Promise<{ descriptor: Descriptor; diffId?: string }> => {
    const key = `${desc.digest} ${compression ?? '-'} ${format} ${needDiffId}`;
    return once(layers, key, () => convertLayerNow(desc, compression, format, needDiffId, expectDiffId));
  };

  const convertLayerNow = async (desc: Descriptor, compression: Compression | undefined, format: Format, needDiffId: boolean, expectDiffId?: string): Promise<{ descriptor: Descriptor; diffId?: string }> => {
    const foreign = isForeignLayerType(desc.mediaType);
    const current = compressionOfMediaType(desc.mediaType);
    if (current === undefined || foreign || desc.urls?.length) {
      // Not a tar layer ocitool knows (or one that lives elsewhere): renamed at most, never re-encoded.
      if (!foreign || !desc.urls?.length) await copyBlob(desc);
      const mt = current === undefined ? desc.mediaType : mediaTypeFor(desc.mediaType, format);
      return { descriptor: retyped(desc, mt), ...(needDiffId ? { diffId: await diffIdOf(desc) } : {}) };
    }
    const want = compression ?? current;
    const mediaType = layerType(want, format, false);
    if (want === current) {
      if (!needDiffId || knownDiffId(desc.digest)) {
        await copyBlob(desc);
        return { descriptor: retyped(desc, mediaType), ...(needDiffId ? { diffId: knownDiffId(desc.digest)! } : {}) };
      }
      return limiter.run(async () => {
        if (await dst.exists(desc)) {
          emit({ type: 'blob-skip', descriptor: desc });
          return { descriptor: retyped(desc, mediaType), diffId: await diffIdOf(desc) };
        }
        // One read: stored at the destination while the tap hashes what it decompresses to.
        emit({ type: 'blob-start', descriptor: desc });
        const started = Date.now();
        const stream = await src.fetch(desc, sig);
        const unpack = decompressor(detectCompression(await peek(stream)));
        const hash = new HashingStream('sha256');
        const hashed = pipeline(unpack, hash, sink());
        hashed.catch(() => undefined);
        const tapped = stream.pipe(new Tap(unpack, hashed));
        stream.on('error', (err) => tapped.destroy(err));
        await dst.push(desc, tapped, sig);
        await hashed;
        emit({ type: 'blob-done', descriptor: desc, bytes: desc.size, seconds: (Date.now() - started) / 1000 });
        return { descriptor: retyped(desc, mediaType), diffId: hash.digest };
      }, desc.size);
    }
    return limiter.run(async () => {
      emit({ type: 'blob-start', descriptor: desc });
      const started = Date.now();
      const file = join(await tempDir(), desc.digest.replace(':', '-'));
      try {
        const source = await src.fetch(desc, sig);
        const kind = detectCompression(await peek(source));
        // A plain tar's verified digest is its diffID: no second hash. Otherwise the decompressed
        // bytes are hashed on their way to the compressor.
        const diff = kind === 'none' ? undefined : new HashingStream('sha256');
        const stages: NodeJS.ReadWriteStream[] = [...(diff ? [decompressor(kind), diff] : []), compressor(want, opts.level)];
        let failure: unknown;
        const encoded = pipelineCb([source, ...stages] as unknown as [Readable, Writable], (err) => {
          if (err) failure ??= asContentError(err, desc.digest, kind);
        }) as unknown as Readable;
        const fail = (err: unknown): never => {
          throw failure ?? asContentError(err, desc.digest, kind);
        };
        let converted: Descriptor;
        if (canPutBlob(dst)) {
          // A layout takes the stream as it comes and names it by the digest it computes: no temp file.
          const put = await dst.putBlob(encoded).catch(fail);
          converted = { ...retyped(desc, mediaType), digest: put.digest, size: put.size };
        } else {
          // A registry needs the digest before the upload ends: through a temp file, hashed as written.
          const out = new HashingStream('sha256');
          await pipeline(encoded, out, createWriteStream(file), sig).catch(fail);
          converted = { ...retyped(desc, mediaType), digest: out.digest, size: out.size };
          if (await dst.exists(converted)) emit({ type: 'blob-skip', descriptor: converted });
          else await dst.push(converted, markVerified(createReadStream(file, { highWaterMark: 1 << 20 }), out.digest), sig);
        }
        delete converted.urls;
        const diffId = diff ? diff.digest : desc.digest;
        if (expectDiffId !== undefined && diffId !== expectDiffId) {
          throw new OciToolError('DIGEST_MISMATCH', `layer ${desc.digest} of ${srcName} decompresses to ${diffId}, but its config says diff_id ${expectDiffId}`);
        }
        emit({ type: 'blob-done', descriptor: converted, bytes: converted.size, seconds: (Date.now() - started) / 1000 });
        return { descriptor: converted, diffId };
      } finally {
        await rm(file, { force: true });
      }
    }, desc.size);
  };

  const convertNode = (desc: Descriptor): Promise<Descriptor> => once(nodes, desc.digest, () => convertNodeNow(desc));

  const convertNodeNow = async (desc: Descriptor): Promise<Descriptor> => {
    opts.signal?.throwIfAborted();
    if (isSchema1Type(desc.mediaType)) return convertSchema1(desc, await fetchBytes(src, desc));
    const node = await fetchManifest(src, desc);
    const what = `manifest ${desc.digest} of ${srcName}`;
    switch (node.parsed.kind) {
      case 'schema1':
        return convertSchema1(desc, node.bytes);
      case 'index': {
        const format = opts.format ?? formatOf(node.parsed.mediaType);
        const index = node.parsed.index;
        const children = await Promise.all(index.manifests.map((m) => (isManifestType(m.mediaType) ? convertNode(m) : copyBlob(m).then(() => m))));
        const doc = JSON.parse(node.bytes.toString('utf8')) as ImageIndex & Record<string, unknown>;
        if (format === 'docker' && (doc.artifactType !== undefined || doc.subject !== undefined)) throw new OciToolError('UNSUPPORTED', `${what}: an index with artifactType or subject has no Docker manifest list form`);
        const mediaType = format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
        const manifests = children.map((c, i) => ({ ...index.manifests[i]!, mediaType: c.mediaType, digest: c.digest, size: c.size }));
        const out = withType(doc, mediaType, node.parsed.mediaType, { manifests });
        const bytes = Buffer.from(JSON.stringify(out));
        if (bytes.equals(node.bytes)) {
          await copyGraph(src, dst, desc, one);
          return desc;
        }
        return pushBytes(mediaType, bytes);
      }
      case 'manifest': {
        const format = opts.format ?? formatOf(node.parsed.mediaType);
        const manifest = node.parsed.manifest;
        const doc = JSON.parse(node.bytes.toString('utf8')) as ImageManifest & Record<string, unknown>;
        if (format === 'docker') {
          if (!isImageConfigType(manifest.config.mediaType)) throw new OciToolError('UNSUPPORTED', `${what}: an artifact (config type ${manifest.config.mediaType}) has no Docker schema 2 form`);
          if (doc.artifactType !== undefined || doc.subject !== undefined) throw new OciToolError('UNSUPPORTED', `${what}: a manifest with artifactType or subject has no Docker schema 2 form`);
        }
        // Recompressed layers are checked against the config's diff_ids.
        const recompress = opts.compression !== undefined && manifest.layers.some((l) => compressionOfMediaType(l.mediaType) !== undefined && compressionOfMediaType(l.mediaType) !== opts.compression);
        const diffIds = recompress && isImageConfigType(manifest.config.mediaType) ? checkImageConfig(parseJson(await fetchBytes(src, manifest.config), `config ${manifest.config.digest}`), `config ${manifest.config.digest}`).rootfs.diff_ids : undefined;
        if (diffIds && diffIds.length !== manifest.layers.length) throw new OciToolError('INVALID_MANIFEST', `${what}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids in its config`);
        const [config, ...newLayers] = await Promise.all([
          copyBlob(manifest.config).then(() => retyped(manifest.config, mediaTypeFor(manifest.config.mediaType, format))),
          ...manifest.layers.map((l, i) => convertLayer(l, opts.compression, format, false, diffIds?.[i]).then((r) => r.descriptor)),
        ]);
        const mediaType = format === 'docker' ? MediaType.DockerManifest : MediaType.OciManifest;
        const out = withType(doc, mediaType, node.parsed.mediaType, { config, layers: newLayers });
        const bytes = Buffer.from(JSON.stringify(out));
        if (bytes.equals(node.bytes)) {
          await copyGraph(src, dst, desc, one);
          return desc;
        }
        return pushBytes(mediaType, bytes);
      }
    }
  };

  const convertSchema1 = async (desc: Descriptor, bytes: Buffer): Promise<Descriptor> => {
    const what = `schema 1 manifest ${desc.digest} of ${srcName}`;
    const doc = readSchema1(bytes, what);
    if (doc.digest !== desc.digest) throw new OciToolError('DIGEST_MISMATCH', `${what}: the manifest hashes to ${doc.digest} (schema 1 payload)`);
    if (doc.signed) {
      try {
        verifySchema1Signatures(bytes, doc, what);
      } catch (err) {
        if (!opts.ignoreSignatures || !(err instanceof OciToolError) || err.code !== 'SIGNATURE_INVALID') throw err;
        opts.warn?.(`${err.message.replace(/ \(use --ignore-signatures[^)]*\)/, '')}; converting it anyway (--ignore-signatures)`);
      }
    }
    const img = normalizeSchema1(doc, what);
    const format = opts.format ?? 'oci';
    const blobSums = schema1Layers(img);
    const sized = new Map<string, Promise<Descriptor>>();
    const descriptorOf = (digest: string): Promise<Descriptor> =>
      once(sized, digest, async () => {
        const size = await src.blobSize?.(digest);
        if (size === undefined) throw new OciToolError('NOT_FOUND', `${what}: layer ${digest} not found (or its size unknown) in ${srcName}`);
        return { mediaType: MediaType.DockerLayerGzip, digest, size };
      });
    const converted = await Promise.all(blobSums.map(async (digest) => convertLayer(await descriptorOf(digest), opts.compression, format, true)));
    const docker = schema1Config(img, converted.map((c) => c.diffId!), what);
    const configBytes = format === 'oci' ? ociConfigFromDocker(docker, `config converted from ${what}`) : docker;
    const config = await pushBytes(format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, configBytes);
    const descs = [config, ...converted.map((c) => c.descriptor)];
    // Field order as containers/image writes them: Docker descriptors are mediaType, size, digest.
    const field = (d: Descriptor): string => (format === 'docker' ? `{"mediaType":${JSON.stringify(d.mediaType)},"size":${d.size},"digest":${JSON.stringify(d.digest)}}` : `{"mediaType":${JSON.stringify(d.mediaType)},"digest":${JSON.stringify(d.digest)},"size":${d.size}}`);
    const mediaType = format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
    const manifest = `{"schemaVersion":2,"mediaType":${JSON.stringify(mediaType)},"config":${field(descs[0]!)},"layers":[${descs.slice(1).map(field).join(',')}]}`;
    return pushBytes(mediaType, Buffer.from(manifest));
  };

  try {
    if (!isManifestType(root.mediaType) && !isIndexType(root.mediaType)) throw new OciToolError('UNSUPPORTED', `${root.digest}: not a manifest (${root.mediaType})`);
    return await convertNode(root);
  } finally {
    if (tmp) await rm(await tmp, { recursive: true, force: true });
  }
}

/** Whether copying `root` as it is would need a conversion anyway (schema 1 into a store that only holds schema 2/OCI). */
export function needsConversion(root: Descriptor, destinationIsRegistry: boolean): boolean {
  return isSchema1Type(root.mediaType) && !destinationIsRegistry;
}
