import { OciToolError } from '../util/errors.js';
import { isValidDigest } from '../digest/digest.js';
import { schema1Payload } from './jws.js';
import { MediaType, isIndexType, isImageManifestType, isSchema1Type } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Schema1Manifest } from './types.js';

/** Manifests, indexes and configs are buffered; nothing larger than this is read into memory. */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

const invalid = (what: string, why: string): OciToolError => new OciToolError('INVALID_JSON', `${what}: ${why}`);

/**
 * How deeply arrays and objects may nest. No manifest, index or config nests past a handful of
 * levels; a hostile document nested a million deep parses, but overflows the stack of everything
 * recursive that touches it afterwards (JSON.stringify, a walk).
 */
export const MAX_JSON_DEPTH = 256;

/** The deepest nesting of `[`/`{` in JSON text, strings skipped; stops counting past `limit`. */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Parses JSON bytes; a one-line error naming `what` on malformed input, over the cap, or nested too deep. */
export function parseJson(data: Uint8Array | string, what: string, cap = MAX_JSON_BYTES): unknown {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  if (size > cap) throw new OciToolError('TOO_LARGE', `${what}: ${size} bytes is over the ${cap}-byte limit for JSON documents`);
  const text = typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8');
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw invalid(what, `JSON nested more than ${MAX_JSON_DEPTH} levels deep`);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalid(what, `malformed JSON (${(err as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks the shape of a descriptor: media type, valid digest, non-negative integer size. */
export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw invalid(what, 'descriptor is not an object');
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw invalid(what, 'descriptor has no mediaType');
  if (typeof v.digest !== 'string' || !isValidDigest(v.digest)) throw invalid(what, `descriptor has an invalid digest ${JSON.stringify(v.digest)}`);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) throw invalid(what, `descriptor ${v.digest} has an invalid size ${JSON.stringify(v.size)}`);
  if (v.annotations !== undefined && !isObject(v.annotations)) throw invalid(what, `descriptor ${v.digest} has invalid annotations`);
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.os !== 'string' || typeof p.architecture !== 'string') throw invalid(what, `descriptor ${v.digest} has an invalid platform`);
  }
  return v as unknown as Descriptor;
}

export function checkIndex(v: unknown, what: string): ImageIndex {
  if (!isObject(v)) throw invalid(what, 'not a JSON object');
  if (v.schemaVersion !== 2) throw invalid(what, `schemaVersion is ${JSON.stringify(v.schemaVersion)}, expected 2`);
  if (!Array.isArray(v.manifests)) throw invalid(what, 'index has no "manifests" array');
  v.manifests.forEach((d, i) => checkDescriptor(d, `${what} manifests[${i}]`));
  if (v.subject !== undefined) checkDescriptor(v.subject, `${what} subject`);
  return v as unknown as ImageIndex;
}

export function checkImageManifest(v: unknown, what: string): ImageManifest {
  if (!isObject(v)) throw invalid(what, 'not a JSON object');
  if (v.schemaVersion !== 2) throw invalid(what, `schemaVersion is ${JSON.stringify(v.schemaVersion)}, expected 2`);
  checkDescriptor(v.config, `${what} config`);
  if (!Array.isArray(v.layers)) throw invalid(what, 'manifest has no "layers" array');
  v.layers.forEach((d, i) => checkDescriptor(d, `${what} layers[${i}]`));
  if (v.subject !== undefined) checkDescriptor(v.subject, `${what} subject`);
  return v as unknown as ImageManifest;
}

export function checkSchema1(v: unknown, what: string): Schema1Manifest {
  if (!isObject(v)) throw invalid(what, 'not a JSON object');
  if (v.schemaVersion !== 1) throw invalid(what, 'not a schema 1 manifest');
  if (!Array.isArray(v.fsLayers) || !Array.isArray(v.history)) throw invalid(what, 'schema 1 manifest lacks fsLayers or history');
  return v as unknown as Schema1Manifest;
}

export function checkImageConfig(v: unknown, what: string): ImageConfig {
  if (!isObject(v)) throw invalid(what, 'not a JSON object');
  const rootfs = v.rootfs;
  if (!isObject(rootfs)) throw invalid(what, 'config has no "rootfs"');
  if (rootfs.type !== 'layers') throw invalid(what, `rootfs.type is ${JSON.stringify(rootfs.type)}, expected "layers"`);
  if (!Array.isArray(rootfs.diff_ids) || !rootfs.diff_ids.every((d) => typeof d === 'string' && isValidDigest(d))) {
    throw invalid(what, 'rootfs.diff_ids is not a list of digests');
  }
  if (typeof v.architecture !== 'string' || typeof v.os !== 'string') throw invalid(what, 'config lacks architecture or os');
  return v as unknown as ImageConfig;
}

/**
 * Guesses a manifest's media type from its content when neither the descriptor nor the document says
 * (as containers/image does): schemaVersion 1 is schema 1; a `manifests` array is an index; otherwise
 * an image manifest whose config type tells OCI from Docker.
 */
export function detectManifestType(v: unknown): string | undefined {
  if (!isObject(v)) return undefined;
  if (typeof v.mediaType === 'string' && v.mediaType !== '') return v.mediaType;
  if (v.schemaVersion === 1) return Array.isArray(v.signatures) ? MediaType.DockerSchema1Signed : MediaType.DockerSchema1;
  if (Array.isArray(v.manifests)) return MediaType.OciIndex;
  if (isObject(v.config) && v.config.mediaType === MediaType.DockerConfig) return MediaType.DockerManifest;
  if (isObject(v.config)) return MediaType.OciManifest;
  return undefined;
}

type Parsed =
  | { kind: 'index'; mediaType: string; index: ImageIndex }
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'schema1'; mediaType: string; manifest: Schema1Manifest };

/**
 * A parsed manifest-like document. `mediaType` is the type it is read as; `ownMediaType` the one the
 * document states itself, when it states one (verify reports a disagreement with the descriptor).
 */
export type ParsedManifest = Parsed & { ownMediaType?: string };

/**
 * Parses a manifest-like document. `mediaType` is the descriptor's type. When the document states a
 * different known manifest type of its own, the document wins (layouts written by other tools carry
 * such quirks); the disagreement stays visible in `ownMediaType`.
 */
export function parseManifest(data: Uint8Array | string, what: string, mediaType?: string): ParsedManifest {
  const v = parseJson(data, what);
  const own = isObject(v) && typeof v.mediaType === 'string' && v.mediaType !== '' ? v.mediaType : undefined;
  const known = (t: string | undefined): t is string => t !== undefined && (isIndexType(t) || isImageManifestType(t) || isSchema1Type(t));
  const mt = known(own) ? own : known(mediaType) ? mediaType : (mediaType ?? detectManifestType(v));
  if (mt === undefined) throw invalid(what, 'cannot tell what kind of manifest this is');
  // A signed schema 1 manifest says only what its signed payload says.
  const doc = isSchema1Type(mt) ? schema1Doc(v, data, what) : v;
  const parsed = parseAs(doc, mt, what);
  return own === undefined ? parsed : { ...parsed, ownMediaType: own };
}

function schema1Doc(v: unknown, data: Uint8Array | string, what: string): unknown {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.length);
  const { payload, signed } = schema1Payload(v, bytes, what);
  return signed ? parseJson(payload, `${what} (signed payload)`) : v;
}

function parseAs(v: unknown, mt: string, what: string): Parsed {
  if (isIndexType(mt)) return { kind: 'index', mediaType: mt, index: checkIndex(v, what) };
  if (isImageManifestType(mt)) return { kind: 'manifest', mediaType: mt, manifest: checkImageManifest(v, what) };
  if (isSchema1Type(mt)) return { kind: 'schema1', mediaType: mt, manifest: checkSchema1(v, what) };
  // A manifest of a type ocitool does not know: read it by its shape if it has a known one.
  const guessed = detectManifestType({ ...(isObject(v) ? v : {}), mediaType: undefined });
  if (guessed === MediaType.OciIndex) return { kind: 'index', mediaType: mt, index: checkIndex(v, what) };
  if (guessed === MediaType.OciManifest || guessed === MediaType.DockerManifest) {
    return { kind: 'manifest', mediaType: mt, manifest: checkImageManifest(v, what) };
  }
  throw new OciToolError('UNSUPPORTED', `${what}: unsupported manifest media type ${mt}`);
}
