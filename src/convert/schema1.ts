/**
 * Docker image manifest schema 1 (SPEC-NOTES §4): the registry digest of signed manifests, the JWS
 * signatures, the normalisation moby and containers/image apply, and the schema 2 / OCI image that
 * containers/image builds from it, byte for byte.
 */
import { createPublicKey, verify as cryptoVerify, type JsonWebKey } from 'node:crypto';
import { digestOf, isValidDigest } from '../digest/digest.js';
import { EMPTY_GZIP_LAYER_DIGEST, EMPTY_TAR_DIFFID } from '../spec/media-types.js';
import { schema1Payload } from '../spec/jws.js';
import { checkSchema1, parseJson } from '../spec/parse.js';
import type { Schema1Manifest } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { GO_ZERO_TIME, goString, goTime, marshalRawMap, rawObjectEntries } from './go-json.js';

const bad = (what: string, why: string): OciToolError => new OciToolError('INVALID_MANIFEST', `${what}: ${why}`);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface Schema1Document {
  /** What the manifest says: for a signed one, its signed payload (never what follows it). */
  manifest: Schema1Manifest;
  /** What the digest is taken over: the JWS payload when signed, else the bytes themselves. */
  payload: Buffer;
  /** The manifest's digest as registries compute it (sha256 of the payload). */
  digest: string;
  signed: boolean;
}

/**
 * Reads a schema 1 manifest (signed or not) and computes its digest as registries do: a signed
 * manifest's payload is `bytes[0:formatLength]` followed by the decoded `formatTail`, which all
 * signatures must agree on.
 */
export function readSchema1(bytes: Buffer, what: string): Schema1Document {
  const { payload, signed } = schema1Payload(parseJson(bytes, what), bytes, what);
  const manifest = checkSchema1(parseJson(payload, `${what} (signed payload)`), what);
  return { manifest, payload, digest: digestOf(payload), signed };
}

/** The schema 1 digest of manifest bytes (signed or not), without the checks of readSchema1's callers. */
export function schema1Digest(bytes: Buffer, what: string): string {
  return readSchema1(bytes, what).digest;
}

const JWS_HASH: Record<string, string> = { ES256: 'sha256', ES384: 'sha384', ES512: 'sha512', RS256: 'sha256', RS384: 'sha384', RS512: 'sha512', PS256: 'sha256' };

/**
 * Verifies every JWS signature of a signed schema 1 manifest against the key in its own header
 * (libtrust signs with the key it carries: this proves integrity, not who signed). Returns the number
 * of signatures checked; throws naming the first that does not verify.
 */
export function verifySchema1Signatures(bytes: Buffer, doc: Schema1Document, what: string): number {
  if (!doc.signed) return 0;
  const sigs = (parseJson(bytes, what) as { signatures: unknown[] }).signatures;
  const payload64 = doc.payload.toString('base64url');
  sigs.forEach((s, i) => {
    const n = `signature ${i + 1} of ${sigs.length}`;
    if (!isObject(s) || !isObject(s.header) || typeof s.signature !== 'string' || typeof s.protected !== 'string') throw bad(what, `${n} is malformed`);
    const { jwk, alg } = s.header;
    const hash = typeof alg === 'string' ? JWS_HASH[alg] : undefined;
    if (!hash) throw new OciToolError('UNSUPPORTED', `${what}: ${n} uses algorithm ${JSON.stringify(alg)}, which ocitool cannot check`);
    let ok = false;
    try {
      const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      const data = Buffer.from(`${s.protected}.${payload64}`);
      const sig = Buffer.from(s.signature, 'base64url');
      ok = alg!.toString().startsWith('ES')
        ? cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, sig)
        : cryptoVerify(hash, data, alg!.toString().startsWith('PS') ? { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */ } : key, sig);
    } catch (err) {
      throw new OciToolError('SIGNATURE_INVALID', `${what}: ${n} cannot be checked: ${(err as Error).message}`);
    }
    if (!ok) throw new OciToolError('SIGNATURE_INVALID', `${what}: ${n} does not verify: the manifest was altered after signing (use --ignore-signatures to convert it anyway)`);
  });
  return sigs.length;
}

/** One history entry's v1Compatibility, the fields conversion uses. */
export interface V1Compat {
  id: string;
  parent?: string;
  created?: string;
  author?: string;
  comment?: string;
  throwaway: boolean;
  createdBy: string;
}

function parseV1(raw: string, what: string): V1Compat {
  const v = parseJson(raw, what);
  if (!isObject(v)) throw bad(what, 'v1Compatibility is not a JSON object');
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const cc = isObject(v.container_config) ? v.container_config : {};
  const cmd = Array.isArray(cc.Cmd) ? cc.Cmd.filter((c): c is string => typeof c === 'string') : [];
  const out: V1Compat = { id: str('id') ?? '', throwaway: v.throwaway === true, createdBy: cmd.join(' ') };
  for (const k of ['parent', 'created', 'author', 'comment'] as const) {
    const s = str(k);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/** A schema 1 image after normalisation: entries newest first, each with its blob. */
export interface Schema1Image {
  doc: Schema1Document;
  entries: { blobSum: string; v1: V1Compat; raw: string }[];
}

/**
 * Checks and normalises a schema 1 manifest as moby's fixManifestLayers (used by containers/image)
 * does: fsLayers and history pair up one to one; ids are valid; consecutive entries with the same id
 * collapse into one; every other entry's parent is the next one's id; the base has no parent.
 */
export function normalizeSchema1(doc: Schema1Document, what: string): Schema1Image {
  const { fsLayers, history } = doc.manifest;
  if (fsLayers.length !== history.length) throw bad(what, `fsLayers has ${fsLayers.length} entries but history has ${history.length}; they must pair up one to one`);
  if (fsLayers.length === 0) throw bad(what, 'no layers (fsLayers is empty)');
  const entries = fsLayers.map((l, i) => {
    const raw = history[i]?.v1Compatibility;
    if (typeof raw !== 'string') throw bad(what, `history[${i}] has no v1Compatibility string`);
    if (!isObject(l) || typeof l.blobSum !== 'string' || !isValidDigest(l.blobSum)) throw bad(what, `fsLayers[${i}] has an invalid blobSum`);
    const v1 = parseV1(raw, `${what} history[${i}]`);
    if (!/^[a-f0-9]{64}$/.test(v1.id)) throw bad(what, `history[${i}] has an invalid id ${JSON.stringify(v1.id)}`);
    return { blobSum: l.blobSum, v1, raw };
  });
  if (entries.at(-1)!.v1.parent) throw bad(what, `the base layer (history[${entries.length - 1}]) has a parent id`);
  const seen = new Set<string>();
  let last = '';
  for (const e of entries) {
    if (seen.has(e.v1.id) && e.v1.id !== last) throw bad(what, `id ${e.v1.id} appears more than once, apart`);
    seen.add((last = e.v1.id));
  }
  for (let i = entries.length - 2; i >= 0; i--) {
    if (entries[i]!.v1.id === entries[i + 1]!.v1.id) entries.splice(i, 1);
    else if ((entries[i]!.v1.parent ?? '') !== entries[i + 1]!.v1.id) throw bad(what, `history[${i}] has parent ${JSON.stringify(entries[i]!.v1.parent ?? '')}, expected ${entries[i + 1]!.v1.id}`);
  }
  return { doc, entries };
}

/** The layers a schema 1 image converts to, oldest first: every entry not marked throwaway. */
export function schema1Layers(img: Schema1Image): string[] {
  return img.entries
    .filter((e) => !e.v1.throwaway)
    .map((e) => e.blobSum)
    .reverse();
}

/** A diffID known without reading the blob (docker's 32-byte gzipped empty tar). */
export function knownDiffId(blobSum: string): string | undefined {
  return blobSum === EMPTY_GZIP_LAYER_DIGEST ? EMPTY_TAR_DIFFID : undefined;
}

function historyTime(v1: V1Compat, what: string): string {
  if (v1.created === undefined) return GO_ZERO_TIME;
  const t = goTime(v1.created);
  if (t === undefined) throw bad(what, `created time ${JSON.stringify(v1.created)} is not RFC 3339`);
  return t;
}

/**
 * The Docker schema 2 image config containers/image makes of a schema 1 image, as the same bytes:
 * the newest v1Compatibility's members (less id, parent, parent_id, layer_id, throwaway and Size),
 * plus rootfs (diffIDs of the non-throwaway layers, oldest first) and one history entry per schema 1
 * entry, oldest first, empty_layer marking the throwaway ones.
 */
export function schema1Config(img: Schema1Image, diffIds: string[], what: string): Buffer {
  const members = rawObjectEntries(img.entries[0]!.raw, `${what} history[0]`);
  for (const k of ['id', 'parent', 'parent_id', 'layer_id', 'throwaway', 'Size']) members.delete(k);
  members.set('rootfs', `{"type":"layers"${diffIds.length ? `,"diff_ids":[${diffIds.map(goString).join(',')}]` : ''}}`);
  const history = [...img.entries].reverse().map(({ v1 }) => {
    const parts = [`"created":${goString(historyTime(v1, what))}`];
    if (v1.author) parts.push(`"author":${goString(v1.author)}`);
    if (v1.createdBy) parts.push(`"created_by":${goString(v1.createdBy)}`);
    if (v1.comment) parts.push(`"comment":${goString(v1.comment)}`);
    if (v1.throwaway) parts.push('"empty_layer":true');
    return `{${parts.join(',')}}`;
  });
  members.set('history', `[${history.join(',')}]`);
  return Buffer.from(marshalRawMap(members));
}

