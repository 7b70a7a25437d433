/**
 * Layer compression: telling gzip, zstd and plain tar apart (by magic bytes and media type), and the
 * streams that undo or apply each. gzip is Node's zlib (parallel on the thread pool for compression);
 * zstd, which Node 20's zlib lacks, runs through the `zstd` program when it is installed (Debian's
 * `zstd` package), and is refused with that reason when it is not.
 */
import { spawn, spawnSync } from 'node:child_process';
import { Duplex, PassThrough, Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { OciToolError } from '../util/errors.js';
import { ParallelGzip } from './gzip.js';
import { checkCompressionLevel } from './levels.js';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** The compression the first bytes of a blob show; plain tar (or anything else) is 'none'. */
export function detectCompression(head: Uint8Array): Compression {
  const starts = (m: number[]): boolean => head.length >= m.length && m.every((b, i) => head[i] === b);
  return starts(GZIP_MAGIC) ? 'gzip' : starts(ZSTD_MAGIC) ? 'zstd' : 'none';
}

/** The compression a layer media type names; undefined for types that are not tar layers. */
export function compressionOfMediaType(mt: string): Compression | undefined {
  if (mt.endsWith('+gzip') || mt.endsWith('.tar.gzip')) return 'gzip';
  if (mt.endsWith('+zstd') || mt.endsWith('.tar.zstd')) return 'zstd';
  if (mt.endsWith('.tar') || mt.endsWith('v1.tar')) return 'none';
  return undefined;
}

let zstdFound: boolean | undefined;
function requireZstd(what: string): void {
  zstdFound ??= spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!zstdFound) throw new OciToolError('UNSUPPORTED', `${what} needs the zstd program (Node 20's zlib has no zstd): install it, e.g. apt-get install zstd`);
}

/** A Transform-like stream running `zstd ARGS` over what is written to it. */
function zstdStream(args: string[]): Duplex {
  const child = spawn('zstd', [...args, '-q', '-c'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString();
  });
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  child.stdout.on('end', () => {
    child.once('close', (code) => {
      if (code === 0) out.end();
      else out.destroy(new OciToolError('IO', `zstd failed (exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`));
    });
    if (child.exitCode !== null) child.emit('close', child.exitCode);
  });
  child.on('error', (err) => out.destroy(err));
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return duplex;
}

/** A stream that decompresses `kind` (a pass-through for 'none'). */
export function decompressor(kind: Compression): Duplex {
  switch (kind) {
    case 'gzip':
      // Output in 256 KiB pieces, not zlib's 16 KiB: sixteen times fewer writes and thread-pool hops downstream.
      return createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd':
      requireZstd('reading a zstd layer');
      return zstdStream(['-d']);
    case 'none':
      return new PassThrough();
  }
}

/** A stream that compresses to `kind` (gzip in parallel, at `level`, default 6; zstd default 3). */
export function compressor(kind: Compression, level?: number): Duplex {
  if (kind !== 'none') checkCompressionLevel(kind, level, 'compression level');
  switch (kind) {
    case 'gzip':
      return new ParallelGzip({ level: level ?? 6 });
    case 'zstd':
      requireZstd('zstd compression');
      return zstdStream([`-${level ?? 3}`, '-T0']);
    case 'none':
      return new PassThrough();
  }
}

/** Resolves to the first bytes of `stream` (up to `n`) without consuming them. */
export async function peek(stream: Readable, n = 4): Promise<Buffer> {
  const taken: Buffer[] = [];
  let have = 0;
  try {
    while (have < n) {
      const chunk = stream.read() as Buffer | null;
      if (chunk !== null) {
        taken.push(chunk);
        have += chunk.length;
        continue;
      }
      if (stream.readableEnded || stream.destroyed) break;
      await new Promise<void>((resolve, reject) => {
        const done = (): void => {
          stream.off('readable', done).off('end', done).off('error', fail);
          resolve();
        };
        const fail = (err: Error): void => {
          stream.off('readable', done).off('end', done);
          reject(err);
        };
        stream.once('readable', done).once('end', done).once('error', fail);
      });
    }
  } finally {
    for (let i = taken.length - 1; i >= 0; i--) stream.unshift(taken[i]);
  }
  return Buffer.concat(taken).subarray(0, n);
}

/**
 * A pass-through that also feeds what passes into `side` (a decompressor chain ending in a hash),
 * waiting for the side to drain and to finish: so one read of a blob both stores it and yields its
 * diffID.
 */
export class Tap extends Transform {
  constructor(
    private readonly side: NodeJS.WritableStream & { once(ev: string, fn: (...a: unknown[]) => void): unknown },
    private readonly sideDone: Promise<unknown>,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    if (this.side.write(chunk)) cb(null, chunk);
    else this.side.once('drain', () => cb(null, chunk));
  }
  override _flush(cb: (err?: Error | null) => void): void {
    this.side.end();
    this.sideDone.then(() => cb(), cb);
  }
}

/**
 * A decompressor's complaint about a blob (zlib's Z_DATA_ERROR and kin) as ocitool's verdict on the
 * content: not worth retrying, and naming the blob. Other errors pass through.
 */
export function asContentError(err: unknown, digest: string, kind: Compression): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) return new OciToolError('DIGEST_MISMATCH', `blob ${digest}: not valid ${kind} data (${(err as Error).message})`, { cause: err });
  if (kind === 'zstd' && err instanceof OciToolError && err.message.startsWith('zstd failed')) return new OciToolError('DIGEST_MISMATCH', `blob ${digest}: not valid zstd data (${err.message})`, { cause: err });
  return err;
}
