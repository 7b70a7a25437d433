/**
 * Uploads against the real registry (distribution 2.8), some through the fault proxy: blobs of
 * unknown digest streamed in (pushStream), what a store asks the registry only once (by its own
 * request log), and the bound on requests in flight to one registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { BlobLocations } from '../src/registry/blob-locations.js';
import { RegistryStore } from '../src/registry/store.js';
import { fetchBytes } from '../src/content/store.js';
import { digestOf } from '../src/digest/digest.js';
import type { Descriptor } from '../src/spec/types.js';
import { DEFAULT_CONNECTIONS_PER_HOST } from '../src/registry/upload-settings.js';
import { MediaType } from '../src/spec/media-types.js';
import { ocitool } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startFakeServer } from './helpers/fake-registry.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry, type RegistryRequest, type TestRegistry } from './helpers/registry.js';
import { isOciToolError } from '../src/util/errors.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-upload-'));
  reg = await startRegistry({ recordRequests: true });
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

/** The requests the registry answered for `repo`, from its own log. */
const requestsOf = async (repo: string): Promise<RegistryRequest[]> => (await reg.requests()).filter((q) => q.uri.startsWith(`/v2/${repo}/`));
const methodsOf = (log: { method: string }[]): string[] => log.map((l) => l.method);

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

describe('pushStream: a blob that ends within 1 MiB', () => {
  const M = 1024 * 1024;
  /** `data` in 64 KiB pieces, each after a turn of the event loop. */
  const later = (data: Buffer, fail?: Error): Readable => Readable.from((async function* () {
    for (let i = 0; i < data.length; i += 65536) {
      await new Promise((r) => setImmediate(r));
      yield data.subarray(i, i + 65536);
    }
    if (fail) throw fail;
  })());
  const readBack = async (repo: string, digest: string, size: number): Promise<Buffer> => fetchBytes(storeAt(reg.host, repo), { mediaType: MediaType.OciLayerGzip, digest, size }, 4 * M);

  it.each([
    ['10 KiB', 10 * 1024],
    ['exactly 1 MiB', M],
  ])('%s goes up as POST and one PUT with the body (no PATCH), stored under its digest', async (_, n) => {
    const data = randomBytes(n);
    await withProxy(async (p) => {
      const put = await storeAt(p.host, 'small/whole').pushStream(later(data));
      expect(put).toEqual({ digest: sha256(data), size: n });
      expect(methodsOf(p.log)).toEqual(['POST', 'PUT']);
      expect(decodeURIComponent(p.log[1]!.path)).toContain(`digest=${put.digest}`);
      expect(p.bytesIn.PUT).toBe(n);
    });
    expect((await readBack('small/whole', sha256(data), n)).equals(data)).toBe(true);
  });

  it('1 MiB + 1 byte goes as a PATCH, then the PUT', async () => {
    const data = randomBytes(M + 1);
    await withProxy(async (p) => {
      expect(await storeAt(p.host, 'small/over').pushStream(later(data))).toEqual({ digest: sha256(data), size: M + 1 });
      expect(methodsOf(p.log)).toEqual(['POST', 'PATCH', 'PUT']);
      expect(p.bytesIn.PATCH).toBe(M + 1);
    });
    expect((await readBack('small/over', sha256(data), M + 1)).equals(data)).toBe(true);
  });

  it('with a chunk size, a blob within it goes in the PUT; a larger small one in Content-Range chunks', async () => {
    const small = randomBytes(30 * 1024);
    const larger = randomBytes(100 * 1024);
    await withProxy(async (p) => {
      const s = new RegistryStore(p.host, 'small/chunked', { push: true, chunkSize: 64 * 1024, locations: new BlobLocations(join(work, 'loc-small-chunked.json')) });
      expect(await s.pushStream(later(small))).toEqual({ digest: sha256(small), size: small.length });
      expect(methodsOf(p.log)).toEqual(['POST', 'PUT']);
      expect(await s.pushStream(later(larger))).toEqual({ digest: sha256(larger), size: larger.length });
      expect(p.log.slice(2).map((l) => [l.method, l.contentRange])).toEqual([['POST', undefined], ['PATCH', '0-65535'], ['PATCH', '65536-102399'], ['PUT', undefined]]);
    });
    expect((await readBack('small/chunked', sha256(small), small.length)).equals(small)).toBe(true);
    expect((await readBack('small/chunked', sha256(larger), larger.length)).equals(larger)).toBe(true);
  });

  it('a check that throws stores nothing: no PUT, the upload is cancelled (DELETE), HEAD says 404', async () => {
    const data = randomBytes(20 * 1024);
    await withProxy(async (p) => {
      const s = storeAt(p.host, 'small/refused');
      await expect(s.pushStream(later(data), { check: () => { throw new Error('diffID differs'); } })).rejects.toThrow('diffID differs');
      expect(methodsOf(p.log)).toEqual(['POST', 'DELETE']);
      expect(await s.blobSize(sha256(data))).toBeUndefined();
    });
  });

  it("a small source that fails before its end stores nothing, and the error is the source's", async () => {
    const data = randomBytes(200 * 1024);
    await withProxy(async (p) => {
      await expect(storeAt(p.host, 'small/broken').pushStream(later(data, new Error('compressor failed')))).rejects.toThrow('compressor failed');
      expect(methodsOf(p.log)).toEqual(['POST', 'DELETE']);
      expect(await storeAt(reg.host, 'small/broken').blobSize(sha256(data))).toBeUndefined();
    });
  });
});

describe('what a store asks the registry once (its request log)', () => {
  const blobOf = (data: Buffer): Descriptor => ({ mediaType: MediaType.OciLayerGzip, digest: sha256(data), size: data.length });
  const manifestOf = (seed: string): { desc: Descriptor; bytes: Buffer } => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciEmpty, digest: sha256(Buffer.from('{}')), size: 2 }, layers: [], annotations: { seed } }));
    return { desc: { mediaType: MediaType.OciManifest, digest: sha256(bytes), size: bytes.length }, bytes };
  };
  const heads = (log: RegistryRequest[], digest: string): number => log.filter((q) => q.method === 'HEAD' && q.uri.endsWith(`/${digest}`)).length;
  /** Pushes the empty config `{}` a manifest of manifestOf() names (the registry checks it is there). */
  const withConfig = async (s: RegistryStore): Promise<void> => s.push(blobOf(Buffer.from('{}')), Readable.from([Buffer.from('{}')]));

  it('a blob pushed, stream-pushed, mounted or found by exists() is not asked about again; a missing one is', async () => {
    const [a, b, c, d] = [randomBytes(100), randomBytes(200), randomBytes(300), randomBytes(400)];
    const s = storeAt(reg.host, 'once/blobs');
    await s.push(blobOf(a), Readable.from([a]));
    const streamed = await s.pushStream(Readable.from([b]));
    await storeAt(reg.host, 'once/other').push(blobOf(c), Readable.from([c]));
    s.addMountSource('once/other');
    expect(await s.mount(blobOf(c))).toEqual({ from: 'once/other' });
    await storeAt(reg.host, 'once/blobs').push(blobOf(d), Readable.from([d])); // by another store: unknown to s
    const missing = blobOf(randomBytes(10));
    for (let i = 0; i < 2; i++) {
      for (const x of [a, b, c, d]) expect(await s.exists(blobOf(x))).toBe(true);
      expect(await s.exists(missing)).toBe(false);
    }
    const log = await requestsOf('once/blobs');
    expect([a, b, c, d].map((x) => heads(log, sha256(x)))).toEqual([0, 0, 0, 1]);
    expect(streamed.digest).toBe(sha256(b));
    expect(heads(log, missing.digest)).toBe(2); // absence is asked again: the blob may come
  });

  it('a manifest pushed (push or pushTagged) is served by fetch() from memory: no GET, its bytes hash to the digest', async () => {
    const s = storeAt(reg.host, 'once/pushed');
    await withConfig(s);
    const [m1, m2] = [manifestOf('push'), manifestOf('pushTagged')];
    await s.push(m1.desc, Readable.from([m1.bytes]));
    await s.pushTagged(m2.desc, m2.bytes, 'v2');
    for (const m of [m1, m2]) {
      const got = await fetchBytes(s, m.desc);
      expect(got.equals(m.bytes)).toBe(true);
      expect(digestOf(got)).toBe(m.desc.digest);
      expect(await s.exists(m.desc)).toBe(true);
    }
    const log = await requestsOf('once/pushed');
    expect(log.filter((q) => q.method === 'GET' || q.method === 'HEAD')).toEqual([]);
  });

  it('resolve(tag, { read: true }) and fetch are one GET; plain resolve(tag) is a HEAD', async () => {
    const m = manifestOf('read');
    const up = storeAt(reg.host, 'once/read');
    await withConfig(up);
    await up.pushTagged(m.desc, m.bytes, 't');
    const before = (await requestsOf('once/read')).length;
    const s = storeAt(reg.host, 'once/read');
    expect(await s.resolve('t', { read: true })).toEqual(m.desc);
    const got = await fetchBytes(s, m.desc);
    expect(digestOf(got)).toBe(m.desc.digest);
    const log = (await requestsOf('once/read')).slice(before);
    expect(log.map((q) => `${q.method} ${q.uri}`)).toEqual(['GET /v2/once/read/manifests/t']);
    expect(await storeAt(reg.host, 'once/read').resolve('t')).toEqual(m.desc);
    expect((await requestsOf('once/read')).slice(before + 1).map((q) => `${q.method} ${q.uri}`)).toEqual(['HEAD /v2/once/read/manifests/t']);
  });

  it('pushTagged is one PUT by tag, after which a fresh store finds the manifest by digest; bytes that do not hash to the digest are refused before any request', async () => {
    const m = manifestOf('tagged');
    const s = storeAt(reg.host, 'once/tagged');
    await withConfig(s);
    const before = (await requestsOf('once/tagged')).length;
    await s.pushTagged(m.desc, m.bytes, 'v1');
    expect((await requestsOf('once/tagged')).slice(before).map((q) => `${q.method} ${q.uri} ${q.status}`)).toEqual(['PUT /v2/once/tagged/manifests/v1 201']);
    const fresh = storeAt(reg.host, 'once/tagged');
    expect(await fresh.resolve(m.desc.digest)).toEqual(m.desc);
    expect((await fetchBytes(fresh, m.desc)).equals(m.bytes)).toBe(true);

    const other = manifestOf('other');
    const err = await s.pushTagged(m.desc, other.bytes, 'v9').catch((e: unknown) => e);
    expect(isOciToolError(err, 'DIGEST_MISMATCH')).toBe(true);
    expect((err as Error).message).toBe(`docker://${reg.host}/once/tagged: manifest ${m.desc.digest} to push hashes to ${other.desc.digest}`);
    expect((await requestsOf('once/tagged')).some((q) => q.uri.endsWith('/v9'))).toBe(false);
    expect(await fresh.listTags()).toEqual(['v1']);
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
      expect(p.log.filter((l) => l.method === 'PUT' && l.path.includes('/manifests/'))).toHaveLength(11); // 10 images by digest, the index by its tag
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
  it('build --chunk-size 65536 pushes a layer of 200 KiB (under 1 MiB, over the chunk) in chunks, and skopeo reads it back', async () => {
    const src = join(work, 'chunk-build');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'noise.bin'), randomBytes(200 * 1024)); // incompressible: the layer stays ~200 KiB
    const ref = `${reg.host}/chunk/build:v1`;
    await ok(ocitool(['build', '-q', '--chunk-size', '65536', '--add', `${src}:/data`, '--tag', `docker://${ref}`], { env: { OCITOOL_CACHE_DIR: join(work, 'cache-chunk-build') } }));
    const inspected = JSON.parse(await ok(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]))) as { layers: { digest: string; size: number }[] };
    expect(inspected.layers).toHaveLength(1);
    expect(inspected.layers[0]!.size).toBeGreaterThan(200 * 1024);
    const layer = await fetchBytes(storeAt(reg.host, 'chunk/build'), { mediaType: MediaType.OciLayerGzip, ...inspected.layers[0]! }, 4 << 20);
    expect(sha256(layer)).toBe(inspected.layers[0]!.digest);
  });
  it('takes a number of bytes of at least 64 KiB: anything else is a usage error (exit 2, one line)', async () => {
    for (const bad of ['1000', '8M', '-5', '']) {
      const r = await ocitool(['push', '--chunk-size', bad, `oci:${join(work, 'none')}:x`, `docker://${reg.host}/flags/x:1`]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([`ocitool: --chunk-size ${bad}: expected a number of bytes of at least 65536, e.g. --chunk-size 8388608`]);
    }
  });
});
