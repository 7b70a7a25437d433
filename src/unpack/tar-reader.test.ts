import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { headerBlock, member, paxHeader, tarBytes } from '../../test/helpers/tar-bytes.js';
import { OciToolError } from '../util/errors.js';
import { readTar, type TarHeader } from './tar-reader.js';

/** Feeds `chunks` one by one, counting how many were asked for. */
function source(chunks: Buffer[]): AsyncIterable<Buffer> & { pulled: number } {
  const s = {
    pulled: 0,
    async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
      for (const c of chunks) {
        s.pulled++;
        yield c;
      }
    },
  };
  return s;
}

async function headers(src: AsyncIterable<Buffer>, what?: string): Promise<TarHeader[]> {
  const out: TarHeader[] = [];
  for await (const item of readTar(src, what)) {
    out.push(item.header);
    await item.skip();
  }
  return out;
}

const failure = (p: Promise<unknown>): Promise<OciToolError> =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => {
      if (err instanceof OciToolError) return err;
      throw err;
    },
  );

describe('readTar', () => {
  it('refuses a GNU long name claiming 800 MiB as soon as its header arrives, reading none of it', async () => {
    const src = source([headerBlock({ name: '././@LongLink', flag: 'L', magic: 'gnu', size: 800 * 1024 * 1024 }), ...Array.from({ length: 100 }, () => Buffer.alloc(8192, 0x61))]);
    const err = await failure(headers(src, 'layer sha256:abc'));
    expect(err.message).toBe('layer sha256:abc: GNU long name at byte 0 claims 838860800 bytes, over the 65537-byte limit');
    expect(src.pulled).toBe(1);
  });

  it('refuses a PAX size of -1536 instead of going back', async () => {
    const tar = tarBytes(paxHeader([['size', '-1536']]), member({ name: 'f' }, 'data'));
    expect((await failure(headers(source([tar])))).message).toBe('layer tar: PAX size="-1536" is not a non-negative integer');
  });

  it('reads a layer with 10,000 global PAX records over 5,000 entries in linear time', async () => {
    const records: [string, string][] = Array.from({ length: 10_000 }, (_, i) => [`comment.${i}`, 'x']);
    const parts = [paxHeader(records, 'g'), ...Array.from({ length: 5000 }, (_, i) => member({ name: `f${i}` }, 'x'))];
    const t0 = performance.now();
    expect(await headers(source([tarBytes(...parts)]))).toHaveLength(5000);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('reads what GNU tar writes with --format=gnu -G (times in the prefix field), names intact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ocitool-tar-reader-'));
    try {
      await mkdir(join(dir, 'gd', 'sub'), { recursive: true });
      await writeFile(join(dir, 'gd', 'sub', 'file'), 'hello\n');
      execFileSync('tar', ['--format=gnu', '-G', '-cf', join(dir, 'g.tar'), '-C', dir, 'gd']);
      const tar = await readFile(join(dir, 'g.tar'));
      expect(tar.toString('latin1', 257, 265)).toBe('ustar  \0');
      expect(tar[345]).not.toBe(0); // the atime GNU tar -G keeps where POSIX has the prefix
      const hs = await headers(source([tar]));
      expect(hs.map((h) => [h.name, h.type, h.size])).toEqual([
        ['gd/', 'directory', 0],
        ['gd/sub/', 'directory', 0],
        ['gd/sub/file', 'file', 6],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the tar when it is cut short inside an extended header', async () => {
    const tar = paxHeader([['path', 'x'.repeat(600)]]).subarray(0, 700);
    expect((await failure(headers(source([tar]), 'layer 2'))).message).toBe('layer 2: truncated (an extended header)');
  });
});
