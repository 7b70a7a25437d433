import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OciToolError } from '../util/errors.js';
import { hashAlgorithmOf, type HashAlgorithm } from './digest.js';

/**
 * A pass-through stream that hashes and counts what flows through it. After 'finish'/'end',
 * `digest` and `size` hold the result.
 */
export class HashingStream extends Transform {
  readonly algorithm: HashAlgorithm;
  private readonly hash: Hash;
  size = 0;
  digest = '';

  constructor(algorithm: HashAlgorithm = 'sha256') {
    super();
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digest = `${this.algorithm}:${this.hash.digest('hex')}`;
    cb();
  }
}

const VERIFIED = Symbol.for('ocitool.verified');

/**
 * Marks a stream as one that ends only if its bytes match `digest` (it errors otherwise), so that a
 * consumer that reads it to its end can skip hashing the same bytes again. Only streams that check
 * (VerifyingStream) or pass on a checked stream's end and errors unchanged may carry the mark.
 */
export function markVerified<T extends Readable>(stream: T, digest: string): T {
  (stream as unknown as Record<symbol, string>)[VERIFIED] = digest;
  return stream;
}

/** Whether `stream` carries the mark for exactly `digest`. */
export function isVerifiedFor(stream: Readable, digest: string): boolean {
  return (stream as unknown as Record<symbol, string | undefined>)[VERIFIED] === digest;
}

export interface Expected {
  digest: string;
  /** Expected length in bytes; a negative size means unknown (schema 1 blobSums) and is not checked. */
  size: number;
}

/**
 * A pass-through stream that fails unless exactly `size` bytes hashing to `digest` pass. A stream that
 * runs past the size fails at once (trailing bytes), one that ends short or hashes wrong fails at its end,
 * so a consumer never sees a clean end on bad content. `what` names the content in errors.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private seen = 0;

  /** Bytes that have passed so far (progress reports read it instead of adding a counting stage). */
  get bytes(): number {
    return this.seen;
  }

  constructor(
    private readonly expected: Expected,
    private readonly what: string = expected.digest,
  ) {
    super();
    this.hash = createHash(hashAlgorithmOf(expected.digest));
    markVerified(this, expected.digest);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expected.size >= 0 && this.seen > this.expected.size) {
      cb(new OciToolError('SIZE_MISMATCH', `${this.what}: more than the expected ${this.expected.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expected.size >= 0 && this.seen !== this.expected.size) {
      cb(new OciToolError('SIZE_MISMATCH', `${this.what}: got ${this.seen} bytes, expected ${this.expected.size}`));
      return;
    }
    const algorithm = this.expected.digest.slice(0, this.expected.digest.indexOf(':'));
    const got = `${algorithm}:${this.hash.digest('hex')}`;
    if (got !== this.expected.digest) {
      cb(new OciToolError('DIGEST_MISMATCH', `${this.what}: content hashes to ${got}, expected ${this.expected.digest}`));
      return;
    }
    cb();
  }
}

/** Checks a whole buffer against an expected digest and size. */
export function verifyBuffer(data: Uint8Array, expected: Expected, what: string = expected.digest): void {
  if (expected.size >= 0 && data.length !== expected.size) {
    throw new OciToolError('SIZE_MISMATCH', `${what}: got ${data.length} bytes, expected ${expected.size}`);
  }
  const alg = hashAlgorithmOf(expected.digest);
  const got = `${alg}:${createHash(alg).update(data).digest('hex')}`;
  if (got !== expected.digest) {
    throw new OciToolError('DIGEST_MISMATCH', `${what}: content hashes to ${got}, expected ${expected.digest}`);
  }
}

/**
 * Reads `source` to its end through `stages` (a decompressor, say) and returns the sha256 digest of
 * what comes out: a layer's diffID, a member's digest.
 */
export async function digestOfStream(source: Readable, ...stages: NodeJS.ReadWriteStream[]): Promise<string> {
  const hash = new HashingStream('sha256');
  await pipeline([source, ...stages, hash, new Writable({ write: (_c, _e, cb) => cb() })] as unknown as [Readable, Writable]);
  return hash.digest;
}
