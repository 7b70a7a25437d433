import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { dirname, join } from 'node:path';

/** A unique temp file name in `dir`, tagged with our pid so that gc can tell stale ones. */
export function tempName(dir: string, prefix = 'tmp'): string {
  return join(dir, `${prefix}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Pid recorded in a name made by `tempName`, if any. */
export function pidOfTempName(name: string): number | undefined {
  const m = /-(\d+)-[0-9a-f]{12}$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Writes `data` to a temp file in `tmpDir`, syncs it, renames it over `path`, and syncs the directory. */
export async function atomicWriteFile(path: string, data: string | Uint8Array, tmpDir: string): Promise<void> {
  await mkdir(tmpDir, { recursive: true });
  const tmp = tempName(tmpDir, 'write');
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dirname(path));
}

export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* not supported everywhere; best effort */
  }
}

/** Whether a process with this pid runs on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A Writable onto an open file handle that leaves the handle open and, when `sync` is set, fsyncs it
 * before finishing — so that a caller can rename the file knowing its bytes are on disk.
 */
export function fileHandleWriter(fh: FileHandle, sync: boolean): Writable {
  const writeAll = async (buf: Buffer): Promise<void> => {
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
  };
  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      writeAll(chunk).then(() => cb(), cb);
    },
    writev(chunks, cb) {
      writeAll(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => cb(), cb);
    },
    final(cb) {
      (sync ? fh.sync() : Promise.resolve()).then(() => cb(), cb);
    },
  });
}
