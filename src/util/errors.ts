/**
 * Typed errors. Every failure ocitool reports carries a `code`; the CLI maps codes to exit
 * codes in one place (usage-type codes exit 2, everything else 1) and prints `message` alone.
 * Messages name the thing at fault (layout path, blob digest, tag, reference, registry).
 */
export type ErrorCode =
  | 'USAGE' // bad flags or arguments (exit 2)
  | 'INVALID_REFERENCE' // an image reference that does not parse (exit 2)
  | 'INVALID_DIGEST' // a digest string that does not parse
  | 'NOT_FOUND' // blob, manifest, tag or layout missing
  | 'DIGEST_MISMATCH' // content does not hash to its descriptor's digest
  | 'SIZE_MISMATCH' // content length differs from its descriptor's size
  | 'INVALID_LAYOUT' // an OCI layout that breaks the spec (oci-layout, index.json)
  | 'INVALID_JSON' // a JSON document that does not parse or has the wrong shape
  | 'INVALID_ARCHIVE' // a tar that is damaged, truncated or lacks what its format needs
  | 'INVALID_MANIFEST' // a manifest that parses but breaks its format's rules (schema 1 pairing, ids)
  | 'SIGNATURE_INVALID' // a signed manifest whose signature does not verify
  | 'TOO_LARGE' // a document over its size cap
  | 'LOCKED' // could not take a lock in time
  | 'UNSUPPORTED' // a valid input ocitool cannot handle (yet)
  | 'AMBIGUOUS' // a reference that matches several images
  | 'VERIFY_FAILED' // verify found problems
  | 'REGISTRY' // a registry refused or failed a request
  | 'INTERRUPTED' // cancelled by a signal (exit 130)
  | 'IO'; // filesystem or network failure

const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['USAGE', 'INVALID_REFERENCE']);

export class OciToolError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OciToolError';
    this.code = code;
  }
  /** Exit code the CLI uses for this error: 2 for usage errors, 130 when interrupted, 1 otherwise. */
  get exitCode(): number {
    return USAGE_CODES.has(this.code) ? 2 : this.code === 'INTERRUPTED' ? 130 : 1;
  }
}

export function isOciToolError(err: unknown, code?: ErrorCode): err is OciToolError {
  return err instanceof OciToolError && (code === undefined || err.code === code);
}

/** Node system error code (ENOENT, EEXIST, …) of an unknown thrown value, if any. */
export function errno(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    return typeof c === 'string' ? c : undefined;
  }
  return undefined;
}
