/**
 * Uploads against the real registry (distribution 2.8), some through the fault proxy: blobs of
 * unknown digest streamed in (pushStream), and the bound on requests in flight to one registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { BlobLocations } from '../src/registry/blob-locations.js';
import { RegistryStore } from '../src/registry/store.js';
import { DEFAULT_CONNECTIONS_PER_HOST } from '../src/registry/upload-settings.js';
import { MediaType } from '../src/spec/media-types.js';
import { ocitool } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startFakeServer } from './helpers/fake-registry.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { ok } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-upload-'));
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

const storeAt = (host: string, repo: string): RegistryStore => new RegistryStore(host, repo, { push: true, backoffMs: 10, locations: new BlobLocations(join(work, `loc-${repo.replace(/\//g, '-')}.json`)) });
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function withProxy<T>(fn: (p: FaultProxy) => Promise<T>): Promise<T> {
  const p = await startFaultProxy(reg.host, () => 'none');
  try {
    return await fn(p);
  } finally {
    await p.stop();
  }
}

/** 3 MiB in 64 KiB pieces, as a compressor hands them out. */
const pieces = (data: Buffer): Readable => Readable.from((function* () {
  for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
})());

describe('pushStream (a blob whose digest is known at its end)', () => {
  it('stores the blob under the digest it hashed to, in one streamed PATCH and the final PUT', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 77);
    await withProxy(async (p) => {
      const s = storeAt(p.host, 'stream/ok');
      const checked: { digest: string; size: number }[] = [];
      const put = await s.pushStream(pieces(data), { check: (x) => void checked.push(x) });
      expect(put).toEqual({ digest: sha256(data), size: data.length });
      expect(checked).toEqual([put]);
      expect(p.log.filter((l) => l.method === 'PATCH')).toHaveLength(1);
      expect(p.log.filter((l) => l.method === 'PUT').map((l) => decodeURIComponent(l.path).includes(`digest=${put.digest}`))).toEqual([true]);
    });
    const back = storeAt(reg.host, 'stream/ok');
    expect(await back.blobSize(sha256(data))).toBe(data.length);
    const got: Buffer[] = [];
    for await (const c of await back.fetch({ mediaType: MediaType.OciLayerGzip, digest: sha256(data), size: data.length })) got.push(c as Buffer);
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  it('with a chunk size, in Content-Range chunks of it (the last one shorter)', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 77);
    await withProxy(async (p) => {
      const s = new RegistryStore(p.host, 'stream/chunks', { push: true, chunkSize: 1024 * 1024, locations: new BlobLocations(join(work, 'loc-chunks.json')) });
      expect(await s.pushStream(pieces(data))).toEqual({ digest: sha256(data), size: data.length });
      const M = 1024 * 1024;
      expect(p.log.filter((l) => l.method === 'PATCH').map((l) => l.contentRange)).toEqual([`0-${M - 1}`, `${M}-${2 * M - 1}`, `${2 * M}-${3 * M - 1}`, `${3 * M}-${3 * M + 76}`]);
    });
    expect(await storeAt(reg.host, 'stream/chunks').blobSize(sha256(data))).toBe(data.length);
  });

  it('a check that throws stores nothing: no final PUT, the upload is cancelled, HEAD says 404', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    await withProxy(async (p) => {
      const s = storeAt(p.host, 'stream/refused');
      await expect(s.pushStream(pieces(data), { check: () => { throw new Error('diffID differs'); } })).rejects.toThrow('diffID differs');
      expect(p.log.some((l) => l.method === 'PUT')).toBe(false);
      expect(p.log.filter((l) => l.method === 'DELETE')).toHaveLength(1);
      expect(await s.blobSize(sha256(data))).toBeUndefined();
    });
  });

  it('a source that fails mid-way stores nothing and the error is the source\'s', async () => {
    await withProxy(async (p) => {
      const s = storeAt(p.host, 'stream/broken');
      const broken = new Readable({ read() {} });
      broken.push(randomBytes(1024 * 1024));
      setTimeout(() => broken.destroy(new Error('compressor failed')), 100);
      await expect(s.pushStream(broken)).rejects.toThrow('compressor failed');
      expect(p.log.some((l) => l.method === 'PUT')).toBe(false);
    });
  });
});

describe('requests in flight to one registry', () => {
  it('an index of 10 images x 5 layers pushed with --concurrency 4 keeps at most 6 requests open at once', async () => {
    const dir = join(work, 'index-layout');
    const layout = await OciLayout.init(dir);
    const manifests = [];
    for (let i = 0; i < 10; i++) {
      const img = await writeTestImage(layout, { seed: `image-${i}`, layers: 5, platform: { os: 'linux', architecture: `arch${i}` } });
      manifests.push({ ...img.manifest, platform: { os: 'linux', architecture: `arch${i}` } });
    }
    const index = await layout.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }), MediaType.OciIndex);
    await layout.tag(index, 'all');
    await withProxy(async (p) => {
      await ok(ocitool(['push', '--concurrency', '4', `oci:${dir}:all`, `docker://${p.host}/bound/index:all`], { env: { OCITOOL_CACHE_DIR: join(work, 'cache-bound') } }));
      expect(p.log.filter((l) => l.method === 'PUT' && l.path.includes('/manifests/'))).toHaveLength(12); // 10 images, the index, its tag
      expect(p.peakInFlight()).toBeLessThanOrEqual(6);
    });
  });

  it('a library caller starting 40 requests at once gets at most the per-host connection cap', async () => {
    // A registry that takes 100 ms over each answer, so that the requests would all overlap.
    let open = 0;
    let peak = 0;
    const slow = await startFakeServer((req, res) => {
      open++;
      peak = Math.max(peak, open);
      req.resume();
      setTimeout(() => {
        open--;
        res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-length': '0' }).end();
      }, 100);
    });
    try {
      const s = storeAt(slow.host, 'bound/library');
      const descs = Array.from({ length: 40 }, (_, i) => ({ mediaType: MediaType.OciLayerGzip, digest: sha256(Buffer.from(String(i))), size: 1 }));
      expect(await Promise.all(descs.map((d) => s.exists(d)))).toEqual(descs.map(() => false));
      expect(slow.seen.filter((q) => q.method === 'HEAD')).toHaveLength(40);
      expect(peak).toBeLessThanOrEqual(DEFAULT_CONNECTIONS_PER_HOST);
    } finally {
      await slow.stop();
    }
  });

  it('requests that start together without a token share one token request', async () => {
    const tokenReg = await startRegistry({ auth: 'token' });
    try {
      const s = new RegistryStore(tokenReg.host, 'tok/shared', { push: true, credential: { username: tokenReg.username!, password: tokenReg.password!, source: 'test' }, locations: new BlobLocations(join(work, 'loc-tok.json')) });
      const descs = Array.from({ length: 20 }, (_, i) => ({ mediaType: MediaType.OciLayerGzip, digest: sha256(Buffer.from(`t${i}`)), size: 1 }));
      expect(await Promise.all(descs.map((d) => s.exists(d)))).toEqual(descs.map(() => false));
      expect(tokenReg.tokenServer!.requests.filter((r) => r.status === 200)).toHaveLength(1);
    } finally {
      await tokenReg.stop();
    }
  });
});

describe('--chunk-size', () => {
  it('takes a number of bytes of at least 64 KiB: anything else is a usage error (exit 2, one line)', async () => {
    for (const bad of ['1000', '8M', '-5', '']) {
      const r = await ocitool(['push', '--chunk-size', bad, `oci:${join(work, 'none')}:x`, `docker://${reg.host}/flags/x:1`]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([`ocitool: --chunk-size ${bad}: expected a number of bytes of at least 65536, e.g. --chunk-size 8388608`]);
    }
  });
});
