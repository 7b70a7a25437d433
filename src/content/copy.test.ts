import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeTestImage } from '../../test/helpers/images.js';
import { startRegistry, type TestRegistry } from '../../test/helpers/registry.js';
import { BlobLocations } from '../registry/blob-locations.js';
import { RegistryStore } from '../registry/store.js';
import { OciLayout } from '../layout/layout.js';
import { MediaType } from '../spec/media-types.js';
import type { Descriptor, ImageManifest } from '../spec/types.js';
import type { Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';
import { copyGraph, worthRetrying, type CopyEvent } from './copy.js';
import { canPushTagged } from './store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-copy-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('copyGraph', () => {
  it('starts the largest blobs first and never has more than `concurrency` requests in flight, existence checks included', async () => {
    const src = await OciLayout.init(join(dir, 'src'));
    const sizes = [700, 90_000, 12, 5_000, 300_000, 40];
    const layers = [];
    for (const n of sizes) layers.push(await src.putBytes(randomBytes(n), MediaType.OciLayerGzip));
    const config = await src.putBytes('{}', MediaType.OciConfig);
    const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
    const root = await src.putBytes(JSON.stringify(m), MediaType.OciManifest);
    for (const concurrency of [1, 2]) {
      const layout = await OciLayout.init(join(dir, `dst-${concurrency}`));
      // Every request to the destination (existence checks included) counts as one in flight.
      let inFlight = 0;
      let mostInFlight = 0;
      const counted = async <T>(p: Promise<T>): Promise<T> => {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        try {
          return await p;
        } finally {
          inFlight--;
        }
      };
      const dst = {
        exists: (d: Descriptor): Promise<boolean> => counted(layout.exists(d)),
        push: (d: Descriptor, c: Readable): Promise<void> => counted(layout.push(d, c)),
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
      // Largest first: blobs let in together may start in either order, but none starts before a
      // larger one was let in (each is among the `concurrency` largest not yet started).
      const expected = [...sizes, 2].sort((a, b) => b - a);
      expect([...started].sort((a, b) => b - a)).toEqual(expected);
      started.forEach((size, i) => expect(expected.indexOf(size), `start ${i}`).toBeLessThan(i + concurrency));
      expect(most).toBe(concurrency);
      expect(mostInFlight).toBeLessThanOrEqual(concurrency);
      expect(events.at(-1)).toMatchObject({ type: 'manifest-pushed', descriptor: { digest: root.digest } });
      expect(await layout.exists(layers[4]!)).toBe(true);
    }
  });
});

describe('copyGraph failure and transforms', () => {
  async function image(n: number): Promise<{ src: OciLayout; root: Descriptor; layers: Descriptor[]; bytes: Buffer }> {
    const src = await OciLayout.init(join(dir, 'src'));
    const layers = [];
    for (let i = 0; i < n; i++) layers.push(await src.putBytes(randomBytes(1000 + i), MediaType.DockerLayerGzip));
    const config = await src.putBytes('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}', MediaType.DockerConfig);
    // Indented as docker pushes manifests (three spaces): re-serialising would change the digest.
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers }, null, 3));
    const root = await src.putBytes(bytes, MediaType.DockerManifest);
    return { src, root, layers, bytes };
  }

  it('the first failure aborts the transfers in flight, waits for them to settle, and is the error reported', async () => {
    const { src, root, layers } = await image(3);
    const dstLayout = await OciLayout.init(join(dir, 'dst'));
    const settled: string[] = [];
    const boom = new OciToolError('DIGEST_MISMATCH', 'the first failure');
    const dst = {
      exists: (d: Descriptor): Promise<boolean> => dstLayout.exists(d),
      push: async (d: Descriptor, c: Readable, o?: { signal?: AbortSignal }): Promise<void> => {
        c.resume();
        if (d.digest === layers[0]!.digest) {
          await new Promise((r) => setTimeout(r, 50));
          throw boom;
        }
        // The others run until the copy aborts them, and take a while to clean up after that.
        try {
          await new Promise<void>((_, reject) => o?.signal?.addEventListener('abort', () => setTimeout(() => reject(new Error(`late cleanup error of ${d.digest}`)), 150)));
        } finally {
          settled.push(d.digest);
        }
      },
    };
    await expect(copyGraph(src, dst, root, { concurrency: 4 })).rejects.toBe(boom);
    // Both other layers and the config had been aborted and had settled before the copy reported.
    expect(settled.sort()).toEqual([layers[1]!.digest, layers[2]!.digest, (JSON.parse((await src.fetchBytes(root)).toString()) as { config: Descriptor }).config.digest].sort());
    expect(await dstLayout.exists(root)).toBe(false);
  });

  it('a caller\'s abort stops queued work: nothing starts after it', async () => {
    const { src, root } = await image(6);
    const dstLayout = await OciLayout.init(join(dir, 'dst2'));
    const abort = new AbortController();
    let pushes = 0;
    const dst = {
      exists: (d: Descriptor): Promise<boolean> => dstLayout.exists(d),
      push: async (d: Descriptor, c: Readable, o?: { signal?: AbortSignal }): Promise<void> => {
        pushes++;
        abort.abort(new Error('interrupted'));
        c.resume();
        o?.signal?.throwIfAborted();
        await dstLayout.push(d, c);
      },
    };
    await expect(copyGraph(src, dst, root, { concurrency: 1, signal: abort.signal })).rejects.toThrow('interrupted');
    expect(pushes).toBe(1);
  });

  it('a transform that changes nothing passes on the original bytes: an indented manifest keeps its digest', async () => {
    const { src, root, bytes } = await image(2);
    const dst = await OciLayout.init(join(dir, 'dst3'));
    const seen: string[] = [];
    const out = await copyGraph(src, dst, root, {
      transform: async (node) => {
        seen.push(node.descriptor.digest);
        return undefined;
      },
    });
    expect(out).toEqual(root);
    expect(seen).toEqual([root.digest]);
    expect((await dst.fetchBytes(root)).equals(bytes)).toBe(true);
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

describe('copyGraph keeps bytes when parents disagree on a shared blob\'s media type', () => {
  it('an index of a Docker and an OCI manifest sharing config and layer keeps its digest', async () => {
    const src = await OciLayout.init(join(dir, 'shared-src'));
    const layer = await src.putBytes(randomBytes(500), MediaType.DockerLayerGzip);
    const config = await src.putBytes('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}', MediaType.DockerConfig);
    const docker = await src.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] }), MediaType.DockerManifest);
    const oci = await src.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { ...config, mediaType: MediaType.OciConfig }, layers: [{ ...layer, mediaType: MediaType.OciLayerGzip }] }), MediaType.OciManifest);
    const index = await src.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [docker, oci] }), MediaType.OciIndex);
    const dst = await OciLayout.init(join(dir, 'shared-dst'));
    expect(await copyGraph(src, dst, index)).toEqual(index);
    for (const d of [index, docker, oci]) expect((await dst.fetchBytes(d)).equals(await src.fetchBytes(d))).toBe(true);
  });
});

describe('worthRetrying and timeouts', () => {
  it('a registry timeout is final, whatever network error it carries as its cause', async () => {
    const { RegistryTimeout } = await import('../registry/errors.js');
    const cause = Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    expect(worthRetrying(new RegistryTimeout('127.0.0.1:1: timed out', { cause }))).toBe(false);
  });
});

describe('copyGraph tagRoot', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ recordRequests: true });
  });
  afterAll(async () => reg?.stop());

  const storeOf = (repo: string): RegistryStore => new RegistryStore(reg.host, repo, { push: true, locations: new BlobLocations(join(dir, 'locations.json')) });
  const manifestPuts = async (repo: string): Promise<string[]> =>
    (await reg.requests()).filter((q) => q.method === 'PUT' && q.uri.startsWith(`/v2/${repo}/manifests/`)).map((q) => q.uri.slice(`/v2/${repo}/manifests/`.length));

  /** An index of two small images in a layout: the root, and its two manifests. */
  async function source(): Promise<{ src: OciLayout; root: Descriptor; children: Descriptor[] }> {
    const src = await OciLayout.init(join(dir, 'src'));
    const children = [];
    for (const arch of ['amd64', 'arm64']) children.push((await writeTestImage(src, { seed: `${arch}-${randomBytes(4).toString('hex')}`, layers: 1 })).manifest);
    const root = await src.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }), MediaType.OciIndex);
    return { src, root, children };
  }

  it('to a registry, the root goes up in one PUT by its tag and none by its digest (its children by digest)', async () => {
    const { src, root, children } = await source();
    expect(await copyGraph(src, storeOf('tagroot/reg'), root, { tagRoot: 'v1' })).toEqual(root);
    expect((await manifestPuts('tagroot/reg')).sort()).toEqual([...children.map((c) => c.digest), 'v1'].sort());
    const fresh = storeOf('tagroot/reg');
    expect(await fresh.resolve('v1')).toEqual(root);
    expect(await fresh.resolve(root.digest)).toEqual(root);
  });

  it('to a registry that already holds the root, the tag is still set (a PUT by tag, nothing else pushed)', async () => {
    const { src, root } = await source();
    await copyGraph(src, storeOf('tagroot/again'), root, { tagRoot: 'v1' });
    const before = (await manifestPuts('tagroot/again')).length;
    expect(await copyGraph(src, storeOf('tagroot/again'), root, { tagRoot: 'v2' })).toEqual(root);
    expect((await manifestPuts('tagroot/again')).slice(before)).toEqual(['v2']);
    expect(await storeOf('tagroot/again').resolve('v2')).toEqual(root);
  });

  it('to an OCI layout (no one-step push and tag), the tag is set after the copy; again when the layout already holds the root', async () => {
    const { src, root } = await source();
    const dst = await OciLayout.init(join(dir, 'dst'));
    expect(canPushTagged(dst)).toBe(false);
    expect(await copyGraph(src, dst, root, { tagRoot: 'v1' })).toEqual(root);
    expect((await dst.resolve('v1')).digest).toBe(root.digest);
    const events: CopyEvent[] = [];
    await copyGraph(src, dst, root, { tagRoot: 'v2', onProgress: (e) => events.push(e) });
    expect(events.filter((e) => e.type === 'manifest-pushed')).toEqual([]);
    expect((await dst.resolve('v2')).digest).toBe(root.digest);
    expect((await dst.resolve('v1')).digest).toBe(root.digest);
  });
});
