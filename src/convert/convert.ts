/**
 * Conversions: a per-node transform of the one graph copy (content/copy.ts) that changes manifests'
 * family (Docker schema 2 ↔ OCI), layers' compression, and turns schema 1 images into schema 2 or
 * OCI. A node it leaves as it is is copied as it is (original bytes, mounts, skips, verification), so
 * a conversion that changes nothing is an ordinary copy and keeps every digest.
 *
 * - Docker ↔ OCI: manifests, indexes and media types are renamed; a config keeps its bytes (OCI
 *   readers ignore Docker's extra fields), so its digest (the image ID) and a round trip are kept.
 * - Recompression decompresses each layer (checking it against the config's diff_id), compresses it
 *   to a temp file while hashing, and pushes that: layer digests change, diff_ids do not.
 * - Schema 1 is converted as containers/image converts it (see schema1.ts), each layer read once:
 *   stored at the destination while its diffID is computed.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable, pipeline as pipelineCb } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { Meter, copyGraph, type CopyDestination, type CopyGraphOptions, type GraphContext, type NodeTransform } from '../content/copy.js';
import type { ManifestNode } from '../content/graph.js';
import { canPushStream, fetchBytes, type Fetcher } from '../content/store.js';
import { HashingStream, digestOfStream, markVerified } from '../digest/verify.js';
import { Tap, asContentError, compressionOfMediaType, compressor, decompressor, detectCompression, peek, type Compression } from '../layer/compression.js';
import { MediaType, isForeignLayerType, isImageConfigType, isIndexType, isManifestType, isSchema1Type, mediaTypeFor } from '../spec/media-types.js';
import { checkImageConfig, parseJson } from '../spec/parse.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { makeTempDir } from '../util/fs.js';
import { knownDiffId, normalizeSchema1, readSchema1, schema1Config, schema1Layers, verifySchema1Signatures } from './schema1.js';
import { ociConfigFromDocker } from './oci-config.js';

export type Format = 'oci' | 'docker';

export interface ConvertOptions extends Omit<CopyGraphOptions, 'transform'> {
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
type Destination = CopyDestination & Partial<Fetcher>;


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


const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

const sameDescriptor = (a: Descriptor, b: Descriptor): boolean => a.digest === b.digest && a.mediaType === b.mediaType && a.size === b.size;

/**
 * The conversion `opts` asks for, as a transform of the graph copy. `tempDir` gives a private folder
 * for recompressed layers bound for a registry (which needs the digest before the upload ends).
 */
export function conversion(opts: ConvertOptions, tempDir: () => Promise<string>): NodeTransform {
  const layers = new Map<string, Promise<{ descriptor: Descriptor; diffId?: string }>>();
  let files = 0;

  return async (node: ManifestNode, g: GraphContext): Promise<Descriptor | undefined> => {
    const src = g.src as Source;
    const dst = g.dst as Destination;
    const srcName = src.name ?? 'the source';
    const sig = { signal: g.signal };

    /** The diffID of a blob's content: read from the destination when it has the blob, else from the source. */
    const diffIdOf = async (desc: Descriptor): Promise<string> => {
      const known = knownDiffId(desc.digest);
      if (known) return known;
      const from = dst.fetch && (await dst.exists(desc)) ? (dst as Fetcher) : src;
      const stream = await from.fetch(desc, sig);
      const kind = detectCompression(await peek(stream));
      return digestOfStream(stream, decompressor(kind)).catch((err: unknown) => {
        throw asContentError(err, desc.digest, kind);
      });
    };

    /**
     * A layer in the wanted compression and family. Unchanged bytes are copied (and, when `needDiffId`,
     * their diffID computed on the way); otherwise the layer is recompressed.
     */
    const convertLayer = (desc: Descriptor, compression: Compression | undefined, format: Format, needDiffId: boolean, expectDiffId?: string): Promise<{ descriptor: Descriptor; diffId?: string }> => {
      const key = `${desc.digest} ${compression ?? '-'} ${format} ${needDiffId} ${expectDiffId ?? '-'}`;
      return once(layers, key, () => convertLayerNow(desc, compression, format, needDiffId, expectDiffId));
    };

    const convertLayerNow = async (desc: Descriptor, compression: Compression | undefined, format: Format, needDiffId: boolean, expectDiffId?: string): Promise<{ descriptor: Descriptor; diffId?: string }> => {
      const foreign = isForeignLayerType(desc.mediaType);
      const current = compressionOfMediaType(desc.mediaType);
      if (current === undefined || foreign || desc.urls?.length) {
        // Not a tar layer ocitool knows (or one that lives elsewhere): renamed at most, never re-encoded.
        if (!foreign || !desc.urls?.length) await g.visit(desc);
        const mt = current === undefined ? desc.mediaType : mediaTypeFor(desc.mediaType, format);
        return { descriptor: retyped(desc, mt), ...(needDiffId ? { diffId: await g.limited(() => diffIdOf(desc), desc.size) } : {}) };
      }
      const want = compression ?? current;
      const mediaType = layerType(want, format, false);
      if (want === current) {
        if (!needDiffId || knownDiffId(desc.digest)) {
          await g.visit(desc);
          return { descriptor: retyped(desc, mediaType), ...(needDiffId ? { diffId: knownDiffId(desc.digest)! } : {}) };
        }
        return g.limited(async () => {
          if (await dst.exists(desc)) {
            g.emit({ type: 'blob-skip', descriptor: desc });
            return { descriptor: retyped(desc, mediaType), diffId: await diffIdOf(desc) };
          }
          g.emit({ type: 'blob-start', descriptor: desc });
          const started = Date.now();
          const diffId = await g.retrying(desc, () => storeHashing(desc));
          g.emit({ type: 'blob-done', descriptor: desc, bytes: desc.size, seconds: (Date.now() - started) / 1000 });
          return { descriptor: retyped(desc, mediaType), diffId };
        }, desc.size);
      }
      return g.limited(async () => {
        g.emit({ type: 'blob-start', descriptor: desc });
        const started = Date.now();
        const out = await g.retrying(desc, () => recompress(desc, want, mediaType, expectDiffId));
        g.emit({ type: 'blob-done', descriptor: out.descriptor, bytes: out.descriptor.size, seconds: (Date.now() - started) / 1000, source: desc });
        return out;
      }, desc.size);
    };

    /** One read: the blob stored at the destination while a tap hashes what it decompresses to. */
    const storeHashing = async (desc: Descriptor): Promise<string> => {
      const stream = await src.fetch(desc, sig);
      const kind = detectCompression(await peek(stream));
      const unpack = decompressor(kind);
      const hash = new HashingStream('sha256');
      const hashed = pipeline(unpack, hash, sink());
      hashed.catch(() => undefined);
      const tapped = stream.pipe(new Tap(unpack, hashed));
      stream.on('error', (err) => tapped.destroy(err));
      try {
        await dst.push(desc, tapped, sig);
      } catch (err) {
        stream.destroy(); // an unpiped source would hold its connection until its body timeout
        throw err;
      }
      await hashed.catch((err: unknown) => {
        throw asContentError(err, desc.digest, kind);
      });
      return hash.digest;
    };

    /** The layer decompressed (checked against its diff_id) and compressed to `want`, stored at the destination. */
    const recompress = async (desc: Descriptor, want: Compression, mediaType: string, expectDiffId: string | undefined): Promise<{ descriptor: Descriptor; diffId: string }> => {
      const file = join(await tempDir(), `${desc.digest.replace(':', '-')}.${want}.${++files}`);
      try {
        const source = await src.fetch(desc, sig);
        const kind = detectCompression(await peek(source));
        // A plain tar's verified digest is its diffID: no second hash. Otherwise the decompressed
        // bytes are hashed on their way to the compressor.
        const diff = kind === 'none' ? undefined : new HashingStream('sha256');
        // Progress: the share of the source read (what the bar of `desc` measures).
        const meter = new Meter((bytes) => g.emit({ type: 'blob-progress', descriptor: desc, bytes }));
        const stages: NodeJS.ReadWriteStream[] = [meter, ...(diff ? [decompressor(kind), diff] : []), compressor(want, opts.level)];
        let failure: unknown;
        const encoded = pipelineCb([source, ...stages] as unknown as [Readable, Writable], (err) => {
          if (err) failure ??= asContentError(err, desc.digest, kind);
        }) as unknown as Readable;
        const fail = (err: unknown): never => {
          throw failure ?? asContentError(err, desc.digest, kind);
        };
        const diffIdNow = (): string => {
          const diffId = diff ? diff.digest : desc.digest;
          if (expectDiffId !== undefined && diffId !== expectDiffId) {
            throw new OciToolError('DIGEST_MISMATCH', `layer ${desc.digest} of ${srcName} decompresses to ${diffId}, but its config says diff_id ${expectDiffId}`);
          }
          return diffId;
        };
        let converted: Descriptor;
        if (canPushStream(dst)) {
          // The stream goes in as it comes, named by the digest it hashes to, the diff_id checked
          // before the blob becomes visible: no temp file.
          const put = await dst.pushStream(encoded, { ...sig, check: () => void diffIdNow() }).catch(fail);
          converted = { ...retyped(desc, mediaType), digest: put.digest, size: put.size };
        } else {
          // A registry needs the digest before the upload ends: through a temp file, hashed as written,
          // and checked against the diff_id before anything is sent.
          const out = new HashingStream('sha256');
          await pipeline(encoded, out, createWriteStream(file), sig).catch(fail);
          converted = { ...retyped(desc, mediaType), digest: out.digest, size: out.size };
          diffIdNow();
          if (await dst.exists(converted)) g.emit({ type: 'blob-skip', descriptor: converted });
          else await dst.push(converted, markVerified(createReadStream(file, { highWaterMark: 1 << 20 }), out.digest), sig);
        }
        delete converted.urls;
        return { descriptor: converted, diffId: diffIdNow() };
      } finally {
        await rm(file, { force: true });
      }
    };

    const what = `manifest ${node.descriptor.digest} of ${srcName}`;
    switch (node.parsed.kind) {
      case 'schema1':
        return convertSchema1(node.descriptor, node.bytes);
      case 'index': {
        const format = opts.format ?? formatOf(node.parsed.mediaType);
        const index = node.parsed.index;
        const children = await Promise.all(index.manifests.map((m) => g.visit(m)));
        const mediaType = format === 'docker' ? MediaType.DockerManifestList : MediaType.OciIndex;
        if (formatOf(node.parsed.mediaType) === format && children.every((c, i) => sameDescriptor(c, index.manifests[i]!))) return undefined;
        const doc = JSON.parse(node.bytes.toString('utf8')) as ImageIndex & Record<string, unknown>;
        if (format === 'docker' && (doc.artifactType !== undefined || doc.subject !== undefined)) throw new OciToolError('UNSUPPORTED', `${what}: an index with artifactType or subject has no Docker manifest list form`);
        const manifests = children.map((c, i) => ({ ...index.manifests[i]!, mediaType: c.mediaType, digest: c.digest, size: c.size }));
        return g.putDocument(mediaType, Buffer.from(JSON.stringify(withType(doc, mediaType, node.parsed.mediaType, { manifests }))));
      }
      case 'manifest': {
        const format = opts.format ?? formatOf(node.parsed.mediaType);
        const manifest = node.parsed.manifest;
        const doc = JSON.parse(node.bytes.toString('utf8')) as ImageManifest & Record<string, unknown>;
        if (format === 'docker' && formatOf(node.parsed.mediaType) !== 'docker') {
          if (!isImageConfigType(manifest.config.mediaType)) throw new OciToolError('UNSUPPORTED', `${what}: an artifact (config type ${manifest.config.mediaType}) has no Docker schema 2 form`);
          if (doc.artifactType !== undefined || doc.subject !== undefined) throw new OciToolError('UNSUPPORTED', `${what}: a manifest with artifactType or subject has no Docker schema 2 form`);
        }
        // Recompressed layers are checked against the config's diff_ids.
        const recompress = opts.compression !== undefined && manifest.layers.some((l) => compressionOfMediaType(l.mediaType) !== undefined && compressionOfMediaType(l.mediaType) !== opts.compression);
        const diffIds = recompress && isImageConfigType(manifest.config.mediaType) ? checkImageConfig(parseJson(await g.limited(() => fetchBytes(src, manifest.config)), `config ${manifest.config.digest}`), `config ${manifest.config.digest}`).rootfs.diff_ids : undefined;
        if (diffIds && diffIds.length !== manifest.layers.length) throw new OciToolError('INVALID_MANIFEST', `${what}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids in its config`);
        const [config, ...newLayers] = await Promise.all([
          g.visit(manifest.config).then(() => retyped(manifest.config, mediaTypeFor(manifest.config.mediaType, format))),
          ...manifest.layers.map((l, i) => convertLayer(l, opts.compression, format, false, diffIds?.[i]).then((r) => r.descriptor)),
        ]);
        const unchanged = sameDescriptor(config, manifest.config) && newLayers.every((l, i) => sameDescriptor(l, manifest.layers[i]!));
        if (formatOf(node.parsed.mediaType) === format && unchanged) return undefined;
        const mediaType = format === 'docker' ? MediaType.DockerManifest : MediaType.OciManifest;
        return g.putDocument(mediaType, Buffer.from(JSON.stringify(withType(doc, mediaType, node.parsed.mediaType, { config, layers: newLayers }))));
      }
    }

    async function convertSchema1(desc: Descriptor, bytes: Buffer): Promise<Descriptor> {
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
          const size = await g.limited(async () => src.blobSize?.(digest));
          if (size === undefined) throw new OciToolError('NOT_FOUND', `${what}: layer ${digest} not found (or its size unknown) in ${srcName}`);
          return { mediaType: MediaType.DockerLayerGzip, digest, size };
        });
      const converted = await Promise.all(blobSums.map(async (digest) => convertLayer(await descriptorOf(digest), opts.compression, format, true)));
      const docker = schema1Config(img, converted.map((c) => c.diffId!), what);
      const configBytes = format === 'oci' ? ociConfigFromDocker(docker, `config converted from ${what}`) : docker;
      const config = await g.putDocument(format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, configBytes);
      const descs = [config, ...converted.map((c) => c.descriptor)];
      // Field order as containers/image writes them: Docker descriptors are mediaType, size, digest.
      const field = (d: Descriptor): string => (format === 'docker' ? `{"mediaType":${JSON.stringify(d.mediaType)},"size":${d.size},"digest":${JSON.stringify(d.digest)}}` : `{"mediaType":${JSON.stringify(d.mediaType)},"digest":${JSON.stringify(d.digest)},"size":${d.size}}`);
      const mediaType = format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
      const manifest = `{"schemaVersion":2,"mediaType":${JSON.stringify(mediaType)},"config":${field(descs[0]!)},"layers":[${descs.slice(1).map(field).join(',')}]}`;
      return g.putDocument(mediaType, Buffer.from(manifest));
    }
  };
}

/**
 * Copies the graph below `root` from `src` to `dst`, converting as `opts` asks (the graph copy with
 * the conversion transform). Returns the root of the result (the same descriptor when nothing had to
 * change). Its temp folder is gone when it returns or throws.
 */
export async function convertGraph(src: Source, dst: Destination, root: Descriptor, opts: ConvertOptions = {}): Promise<Descriptor> {
  if (!isManifestType(root.mediaType) && !isIndexType(root.mediaType)) throw new OciToolError('UNSUPPORTED', `${root.digest}: not a manifest (${root.mediaType})`);
  let tmp: ReturnType<typeof makeTempDir> | undefined;
  const tempDir = async (): Promise<string> => (await (tmp ??= makeTempDir('convert'))).path;
  try {
    return await copyGraph(src, dst, root, { ...opts, transform: conversion(opts, tempDir) });
  } finally {
    // A cleanup failure never replaces the copy's own outcome.
    if (tmp) await tmp.then((d) => d.remove()).catch(() => undefined);
  }
}

/** Whether copying `root` as it is would need a conversion anyway (schema 1 into a store that only holds schema 2/OCI). */
export function needsConversion(root: Descriptor, destinationIsRegistry: boolean): boolean {
  return isSchema1Type(root.mediaType) && !destinationIsRegistry;
}
