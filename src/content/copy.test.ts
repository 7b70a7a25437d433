import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OciLayout } from '../layout/layout.js';
import { MediaType } from '../spec/media-types.js';
import type { Descriptor, ImageManifest } from '../spec/types.js';
import type { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import { copyGraph, worthRetrying, type CopyEvent } from './copy.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-copy-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('copyGraph', () => {
  it('starts the largest blobs first and never runs more than `concurrency` at once', async () => {
    const src = await OciLayout.init(join(dir, 'src'));
    const sizes = [700, 90_000, 12, 5_000, 300_000, 40];
    const layers = [];
    for (const n of sizes) layers.push(await src.putBytes(randomBytes(n), MediaType.OciLayerGzip));
    const config = await src.putBytes('{}', MediaType.OciConfig);
    const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
    const root = await src.putBytes(JSON.stringify(m), MediaType.OciManifest);
    for (const concurrency of [1, 2]) {
      const layout = await OciLayout.init(join(dir, `dst-${concurrency}`));
      // The blobs' existence checks all answer at once (a barrier), so the order in which they reach
      // the limiter does not depend on how fast each stat happens to return.
      let open!: () => void;
      const barrier = new Promise<void>((r) => (open = r));
      const asked: Promise<boolean>[] = [];
      const dst = {
        exists: async (d: Descriptor): Promise<boolean> => {
          const there = layout.exists(d);
          if (d.mediaType === MediaType.OciManifest) return there;
          // Opens once every blob has been asked about and every answer is in.
          if (asked.push(there) === sizes.length + 1) void Promise.all(asked).then(open);
          await barrier;
          return there;
        },
        push: (d: Descriptor, c: Readable): Promise<void> => layout.push(d, c),
      };
      const events: CopyEvent[] = [];
      let running = 0;
      let most = 0;
      await copyGraph(src, dst, root, {
        concurrency,
        onProgress: (e) => {
          events.push(e);
          if (e.type === 'blob-start') most = Math.max(most, ++running);
          if (e.type === 'blob-done') running--;
        },
      });
      const started = events.flatMap((e) => (e.type === 'blob-start' ? [e.descriptor.size] : []));
      expect(started).toEqual([...sizes, 2].sort((a, b) => b - a));
      expect(most).toBe(concurrency);
      expect(events.at(-1)).toMatchObject({ type: 'manifest-pushed', descriptor: { digest: root.digest } });
      expect(await layout.exists(layers[4]!)).toBe(true);
    }
  });
});

describe('worthRetrying', () => {
  const withCode = (code: string, message = code): Error => Object.assign(new Error(message), { code });
  it('retries network failures (also wrapped as causes) and retryable registry answers only', () => {
    expect(worthRetrying(withCode('ECONNRESET'))).toBe(true);
    expect(worthRetrying(withCode('UND_ERR_SOCKET', 'other side closed'))).toBe(true);
    expect(worthRetrying(new OciToolError('IO', 'registry: GET blob: socket hang up', { cause: withCode('ECONNRESET') }))).toBe(true);
    expect(worthRetrying(new TypeError('terminated', { cause: withCode('UND_ERR_SOCKET') }))).toBe(true);
    expect(worthRetrying(Object.assign(new OciToolError('REGISTRY', '503'), { retryable: true }))).toBe(true);
  });
  it('does not retry a bug, a local file error or a verdict on content', () => {
    // What createReadStream throws for an empty member read as start > end: it used to be retried three times.
    expect(worthRetrying(Object.assign(new RangeError('The value of "start" is out of range'), { code: 'ERR_OUT_OF_RANGE' }))).toBe(false);
    expect(worthRetrying(withCode('EIO'))).toBe(false);
    expect(worthRetrying(new OciToolError('IO', 'cannot read blobs/sha256/x: EACCES', { cause: withCode('EACCES') }))).toBe(false);
    expect(worthRetrying(new OciToolError('DIGEST_MISMATCH', 'blob x'))).toBe(false);
    expect(worthRetrying(new Error('Size mismatch'))).toBe(false);
  });
});
