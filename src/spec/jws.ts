/**
 * The signed payload of a schema 1 manifest (SPEC-NOTES §4): a JWS "pretty signature" whose
 * `protected` headers give `formatLength` and `formatTail`; the payload is the manifest's first
 * `formatLength` bytes followed by the decoded tail. Only the payload is signed and digested, so it,
 * not the whole body, is what a signed manifest says (as distribution's SignedManifest reads it):
 * members appended after `formatLength` would otherwise change the layers and keep the signature.
 */
import { OciToolError } from '../util/errors.js';

const bad = (what: string, why: string): OciToolError => new OciToolError('INVALID_MANIFEST', `${what}: ${why}`);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ProtectedHeader {
  formatLength: number;
  formatTail: string;
}

function decodeProtected(p: unknown, what: string): ProtectedHeader {
  if (typeof p !== 'string') throw bad(what, 'a signature has no "protected" header');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    throw bad(what, 'a signature\'s "protected" header is not base64url JSON');
  }
  if (!isObject(v) || !Number.isSafeInteger(v.formatLength) || typeof v.formatTail !== 'string') {
    throw bad(what, 'a signature\'s "protected" header lacks formatLength or formatTail');
  }
  return { formatLength: v.formatLength as number, formatTail: v.formatTail };
}

/**
 * The bytes a schema 1 manifest's digest and signatures cover: the JWS payload when `doc` (the parsed
 * body) has signatures, which must all agree on it; else the body itself.
 */
export function schema1Payload(doc: unknown, bytes: Buffer, what: string): { payload: Buffer; signed: boolean } {
  if (!isObject(doc) || !('signatures' in doc)) return { payload: bytes, signed: false };
  const sigs = doc.signatures;
  if (!Array.isArray(sigs) || sigs.length === 0) throw bad(what, '"signatures" is not a non-empty list');
  let format: ProtectedHeader | undefined;
  for (const s of sigs) {
    const h = decodeProtected(isObject(s) ? s.protected : undefined, what);
    if (format && (format.formatLength !== h.formatLength || format.formatTail !== h.formatTail)) throw bad(what, 'the signatures disagree on the signed payload (formatLength/formatTail)');
    format = h;
  }
  const { formatLength, formatTail } = format!;
  if (formatLength <= 0 || formatLength > bytes.length) throw bad(what, `signature formatLength ${formatLength} is outside the manifest's ${bytes.length} bytes`);
  return { payload: Buffer.concat([bytes.subarray(0, formatLength), Buffer.from(formatTail, 'base64url')]), signed: true };
}
