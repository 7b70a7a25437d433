import { constants, type Stats } from 'node:fs';
import { lstat, open, stat, type FileHandle } from 'node:fs/promises';
import { OciToolError, errno } from '../util/errors.js';

/** What a non-regular file is, in words ("a FIFO", "a directory", ...). */
export function kindOf(s: Stats): string {
  if (s.isFile()) return 'a regular file';
  if (s.isDirectory()) return 'a directory';
  if (s.isSymbolicLink()) return 'a symbolic link';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

export interface OpenRegularOptions {
  /** Refuse a symbolic link instead of following it (O_NOFOLLOW). */
  noFollow?: boolean;
  /** Thrown as NOT_FOUND when the file is absent (default: an IO error naming `what`). */
  missing?: () => OciToolError;
}

/**
 * Opens a file for reading that must be a regular file. O_NONBLOCK keeps a FIFO from blocking the open
 * (a regular file ignores the flag); the open descriptor is fstat-ed, so what is checked is what is read.
 * Anything else (FIFO, directory, device, a symbolic link with `noFollow`, a dangling one) is one
 * INVALID_LAYOUT error naming `what`.
 */
export async function openRegular(path: string, what: string, opts: OpenRegularOptions = {}): Promise<{ fh: FileHandle; size: number }> {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0);
  let fh: FileHandle;
  try {
    fh = await open(path, flags);
  } catch (err) {
    const code = errno(err);
    if (code === 'ELOOP' || code === 'ENOENT') {
      const link = await lstat(path).catch(() => undefined);
      const target = link?.isSymbolicLink() ? await stat(path).catch(() => undefined) : undefined;
      if (link?.isSymbolicLink()) throw new OciToolError('INVALID_LAYOUT', `${what} is a symbolic link${target ? '' : ' to nothing'}, not a regular file`);
    }
    if (code === 'ENOENT' && opts.missing) throw opts.missing();
    throw new OciToolError('IO', `cannot open ${what}: ${code ?? (err as Error).message}`, { cause: err });
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new OciToolError('INVALID_LAYOUT', `${what} is ${kindOf(s)}, not a regular file`);
    return { fh, size: s.size };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Reads a whole regular file of at most `cap` bytes; the size is checked before a byte is read. */
export async function readRegularFile(path: string, cap: number, what: string, opts: OpenRegularOptions = {}): Promise<Buffer> {
  const { fh, size } = await openRegular(path, what, opts);
  try {
    if (size > cap) throw new OciToolError('TOO_LARGE', `${what}: ${size} bytes is over the ${cap}-byte limit for documents read into memory`);
    // Read at most cap + 1 bytes, whatever the file grew to since the fstat.
    const buf = Buffer.alloc(Math.min(size, cap) + 1);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got > cap) throw new OciToolError('TOO_LARGE', `${what}: over the ${cap}-byte limit for documents read into memory`);
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}
