import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileHandleWriter } from './fs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-fs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fileHandleWriter', () => {
  it.each([true, false])('writes every byte in order (sync %s), with background flushes along the way', async (sync) => {
    // 70 MiB in network-sized pieces of varying length: more than two 32 MiB flush intervals.
    const block = randomBytes(1 << 20);
    const want = createHash('sha256');
    let total = 0;
    function* pieces(): Generator<Buffer> {
      for (let i = 0; total < 70 << 20; i++) {
        const n = 1000 + ((i * 7919) % 65536);
        const piece = block.subarray(i % 1000, (i % 1000) + n);
        want.update(piece);
        total += piece.length;
        yield piece;
      }
    }
    const file = join(dir, 'out');
    const fh = await open(file, 'w');
    try {
      await pipeline(Readable.from(pieces()), fileHandleWriter(fh, sync));
    } finally {
      await fh.close();
    }
    expect((await stat(file)).size).toBe(total);
    const got = createHash('sha256');
    for await (const c of createReadStream(file)) got.update(c as Buffer);
    expect(got.digest('hex')).toBe(want.digest('hex'));
  });
});
