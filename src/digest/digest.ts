import { createHash } from 'node:crypto';
import { OciToolError } from '../util/errors.js';

/** A parsed digest: `algorithm:encoded`. */
export interface ParsedDigest {
  algorithm: string;
  encoded: string;
}

export type HashAlgorithm = 'sha256' | 'sha512';

const ALGORITHM_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/;
const ENCODED_RE = /^[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Record<HashAlgorithm, number> = { sha256: 64, sha512: 128 };

/**
 * Parses and validates a digest (OCI descriptor.md grammar). sha256 and sha512 must be lowercase hex of
 * the right length; other algorithms that fit the grammar are accepted but cannot be hashed.
 */
export function parseDigest(digest: string): ParsedDigest {
  const i = digest.indexOf(':');
  const fail = (why: string): never => {
    throw new OciToolError('INVALID_DIGEST', `invalid digest "${digest}": ${why}`);
  };
  if (i <= 0) fail('expected algorithm:encoded');
  const algorithm = digest.slice(0, i);
  const encoded = digest.slice(i + 1);
  if (!ALGORITHM_RE.test(algorithm)) fail(`bad algorithm "${algorithm}"`);
  if (!ENCODED_RE.test(encoded)) fail('bad encoded part');
  if (algorithm === 'sha256' || algorithm === 'sha512') {
    const want = HEX_LENGTH[algorithm];
    if (encoded.length !== want || !/^[0-9a-f]+$/.test(encoded)) fail(`${algorithm} needs ${want} lowercase hex characters`);
  }
  return { algorithm, encoded };
}

export function isValidDigest(digest: string): boolean {
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}

/** The hash algorithm of a digest, if ocitool can compute it. */
export function hashAlgorithmOf(digest: string): HashAlgorithm {
  const { algorithm } = parseDigest(digest);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new OciToolError('UNSUPPORTED', `digest "${digest}": unsupported algorithm "${algorithm}"`);
  }
  return algorithm;
}

/** Digest of a buffer (sha256 unless told). */
export function digestOf(data: Uint8Array | string, algorithm: HashAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Shortened digest for display: `sha256:0123456789ab`. */
export function shortDigest(digest: string): string {
  const i = digest.indexOf(':');
  return i < 0 ? digest : digest.slice(0, i + 13);
}
