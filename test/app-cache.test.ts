/**
 * `build --app`'s dependency layer cache: a warm rebuild reuses the cached layer without reading
 * node_modules (a dependency file whose content changed but whose size and mtime did not keeps the
 * OLD digest), a change of the lockfile or of a file's metadata is a miss, a damaged entry or blob
 * is said in one line and rebuilt with the right bytes, --no-cache packs again, and a one-line app
 * change changes only the app layer.
 */
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { copyGraph } from '../src/content/copy.js';
import { OciLayout } from '../src/layout/layout.js';
import { BlobLocations } from '../src/registry/blob-locations.js';
import { RegistryStore } from '../src/registry/store.js';
import type { ImageManifest } from '../src/spec/types.js';
import { ROOT, ocitool } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry } from './helpers/registry.js';
import { MediaType } from '../src/spec/media-types.js';
import { ok, runTool } from './helpers/tools.js';

let work: string;
let app: string;
let cache: string;
let n = 0;

beforeAll(async () => {
  work = join(tmpdir(), `ocitool-app-cache-${randomBytes(6).toString('hex')}`);
  app = join(work, 'app');
  cache = join(work, 'cache');
  await cp(join(ROOT, 'testdata/app'), app, { recursive: true });
  await ok(runTool('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 90_000 }));
  // A whole-second mtime, which utimes can put back exactly.
  const t = new Date(Date.UTC(2024, 0, 1));
  await utimes(join(app, 'node_modules/ms/index.js'), t, t);
}, 120_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Builds the app into a fresh layout; the layer digests (dependencies, app) and stderr. */
async function buildApp(...flags: string[]): Promise<{ deps: string; files: string; stderr: string; layout: string }> {
  const layout = join(work, `out-${++n}`);
  const r = await ocitool(['build', '--app', app, '--tag', `oci:${layout}:v1`, ...flags], { env: { OCITOOL_CACHE_DIR: cache } });
  expect(r.code, r.stderr).toBe(0);
  const l = await OciLayout.open(layout);
  const m = JSON.parse((await l.fetchBytes(await l.resolve('v1'))).toString()) as ImageManifest;
  expect(m.layers).toHaveLength(2);
  return { deps: m.layers[0]!.digest, files: m.layers[1]!.digest, stderr: r.stderr, layout };
}

/** Replaces a file's content by other bytes of the same length, keeping its mtime. */
async function swapContent(file: string): Promise<void> {
  const before = await stat(file);
  const bytes = await readFile(file);
  bytes[0] = bytes[0] === 0x2f ? 0x20 : 0x2f;
  await writeFile(file, bytes);
  await utimes(file, before.atime, before.mtime);
  expect((await stat(file)).mtimeMs).toBe(before.mtimeMs);
}

const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('layer cache'));

describe('build --app: the dependency layer cache', () => {
  it('reuses the layer without reading node_modules; metadata and lockfile changes miss; --no-cache packs again', async () => {
    const cold = await buildApp();
    expect(warnings(cold.stderr)).toEqual([]);
    const [entry] = await readdir(join(cache, 'layers/entries'));
    expect(entry).toMatch(/^[0-9a-f]{64}\.json$/);
    const blob = await readFile(join(cache, 'layers/sha256', cold.deps.slice(7)));
    expect(digestOf(blob)).toBe(cold.deps);

    // Content changed, size and mtime kept: the cached layer is used, so nothing was read.
    const ms = join(app, 'node_modules/ms/index.js');
    await swapContent(ms);
    const warm = await buildApp();
    expect(warm.deps).toBe(cold.deps);
    expect(warm.files).toBe(cold.files);
    // --no-cache packs the tree as it is: the new content gives a new digest (and refreshes the entry).
    const fresh = await buildApp('--no-cache');
    expect(fresh.deps).not.toBe(cold.deps);
    expect((await buildApp()).deps).toBe(fresh.deps);

    // A file's mtime changed: a miss (the layer records the new mtime).
    await swapContent(ms);
    const later = new Date(Date.UTC(2024, 0, 2));
    await utimes(ms, later, later);
    const touched = await buildApp();
    expect(touched.deps).not.toBe(fresh.deps);
    expect(touched.deps).toBe((await buildApp('--no-cache')).deps);

    // A file's size changed (mtime put back): a miss.
    const size = (await stat(ms)).size;
    await writeFile(ms, `${await readFile(ms, 'utf8')}\n`);
    await utimes(ms, later, later);
    expect((await stat(ms)).size).toBe(size + 1);
    const grown = await buildApp();
    expect(grown.deps).not.toBe(touched.deps);
    expect(grown.deps).toBe((await buildApp('--no-cache')).deps);

    // The lockfile changed (same packages, other bytes): a miss. Content swapped first, so a hit would show.
    await swapContent(ms);
    const lock = join(app, 'package-lock.json');
    await writeFile(lock, `${(await readFile(lock, 'utf8')).trimEnd()}\n\n`);
    const relocked = await buildApp();
    expect(relocked.deps).not.toBe(grown.deps);
    expect(relocked.deps).toBe((await buildApp('--no-cache')).deps);
  }, 120_000);

  it('what the layer leaves out (a file beside node_modules, node_modules/.cache) changes neither its bytes nor its cache hit', async () => {
    const ms = join(app, 'node_modules/ms/index.js');
    const before = await buildApp('--no-cache');
    // A new file at the app's top, a tool's cache in node_modules: the folders' mtimes change.
    await writeFile(join(app, 'NOTES.txt'), 'x');
    await mkdir(join(app, 'node_modules/.cache/some-tool'), { recursive: true });
    await writeFile(join(app, 'node_modules/.cache/some-tool/state'), 'y');
    const later = new Date(Date.UTC(2024, 5, 1));
    await utimes(app, later, later);
    await utimes(join(app, 'node_modules'), later, later);
    try {
      // Packed again from scratch: the same bytes (directories carry no mtime of their own).
      expect((await buildApp('--no-cache')).deps).toBe(before.deps);
      // And a hit: with ms's content swapped (metadata kept), only the cached layer gives the old digest.
      await swapContent(ms);
      expect((await buildApp()).deps).toBe(before.deps);
      expect((await buildApp('--no-cache')).deps).not.toBe(before.deps);
    } finally {
      await swapContent(ms);
      await rm(join(app, 'NOTES.txt'));
      await rm(join(app, 'node_modules/.cache'), { recursive: true });
    }
  }, 120_000);

  it('a damaged cached blob or entry is said in one line and the layer is rebuilt with the right bytes', async () => {
    const right = await buildApp('--no-cache');
    const blobFile = join(cache, 'layers/sha256', right.deps.slice(7));
    const blob = await readFile(blobFile);
    blob[blob.length >> 1] = blob[blob.length >> 1]! ^ 0xff;
    await writeFile(blobFile, blob);
    const healed = await buildApp(); // a fresh layout: the cached blob must stream into it
    expect(warnings(healed.stderr)).toEqual([expect.stringContaining(`blob ${right.deps} is damaged`)]);
    expect(healed.deps).toBe(right.deps);
    expect(digestOf(await readFile(join(healed.layout, 'blobs/sha256', right.deps.slice(7))))).toBe(right.deps);
    expect(digestOf(await readFile(blobFile))).toBe(right.deps); // the cache holds the right bytes again

    const entries = join(cache, 'layers/entries');
    const [name] = await readdir(entries);
    const good = JSON.parse(await readFile(join(entries, name!), 'utf8')) as Record<string, unknown>;
    const bads = ['{', JSON.stringify({ ...good, descriptor: { mediaType: 'x', digest: 'sha256:zz', size: -1 } }), JSON.stringify({ ...good, fingerprint: '0'.repeat(64) }), 'x'.repeat(70_000)];
    for (const bad of bads) {
      for (const e of await readdir(entries)) await writeFile(join(entries, e), bad);
      const again = await buildApp();
      expect(warnings(again.stderr)).toHaveLength(1);
      expect(warnings(again.stderr)[0]).toMatch(/layer cache: entry .*\.json (is not JSON|does not have the shape of a cache entry|is larger than 65536 bytes); building the layer again/);
      expect(again.deps).toBe(right.deps);
      expect(warnings((await buildApp()).stderr)).toEqual([]); // rewritten: a hit again
    }

    // A missing cached blob: a miss too.
    await rm(blobFile);
    const missing = await buildApp();
    expect(warnings(missing.stderr)).toEqual([expect.stringContaining(`blob ${right.deps} is missing`)]);
    expect(missing.deps).toBe(right.deps);
  }, 120_000);

  it('a one-line app change changes only the app layer', async () => {
    const before = await buildApp();
    const index = join(app, 'index.js');
    await writeFile(index, `${await readFile(index, 'utf8')}// one more line\n`);
    const after = await buildApp();
    expect(after.deps).toBe(before.deps);
    expect(after.files).not.toBe(before.files);
  }, 60_000);

  it('into another repository of the registry: the cached dependency layer is mounted, not uploaded again', async () => {
    const reg = await startRegistry({ recordRequests: true });
    try {
      const push = async (repo: string): Promise<string> => {
        const r = await ocitool(['build', '--app', app, '--tag', `docker://${reg.host}/${repo}:v1`], { env: { OCITOOL_CACHE_DIR: cache } });
        expect(r.code, r.stderr).toBe(0);
        const m = (await (await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { accept: MediaType.OciManifest } })).json()) as ImageManifest;
        return m.layers[0]!.digest;
      };
      const deps = await push('first/app'); // uploaded (a hit or not, the registry has no copy yet)
      const before = (await reg.requests()).length;
      expect(await push('second/app')).toBe(deps);
      const second = (await reg.requests()).slice(before).filter((q) => q.uri.startsWith('/v2/second/app/blobs/uploads'));
      // One mount of the dependency layer from first/app; no upload carries it.
      expect(second.filter((q) => q.method === 'POST' && q.uri.includes(`mount=${encodeURIComponent(deps)}`) && q.status === 201)).toHaveLength(1);
      expect(second.filter((q) => q.method === 'PUT' && q.uri.includes(encodeURIComponent(deps)))).toEqual([]);
      expect((await fetch(`${reg.url}/v2/second/app/blobs/${deps}`, { method: 'HEAD' })).status).toBe(200);
    } finally {
      await reg.stop();
    }
  }, 90_000);

  it('into a registry: a hit uploads the cached blob; a damaged one never reaches the registry', async () => {
    const reg = await startRegistry();
    try {
      const layerOf = async (repo: string): Promise<{ digest: string; bytes: Buffer }> => {
        const r = await ocitool(['build', '--app', app, '--tag', `docker://${reg.host}/${repo}:v1`], { env: { OCITOOL_CACHE_DIR: cache } });
        expect(r.code, r.stderr).toBe(0);
        const m = (await (await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { accept: MediaType.OciManifest } })).json()) as ImageManifest;
        const digest = m.layers[0]!.digest;
        const bytes = Buffer.from(await (await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
        expect(digestOf(bytes)).toBe(digest);
        return { digest, bytes };
      };
      const cached = (await buildApp()).deps;
      await swapContent(join(app, 'node_modules/ms/index.js')); // a hit keeps the old digest
      expect((await layerOf('one/app')).digest).toBe(cached);

      const blobFile = join(cache, 'layers/sha256', cached.slice(7));
      const blob = await readFile(blobFile);
      blob[10] = blob[10]! ^ 0xff;
      await writeFile(blobFile, blob);
      const started = Date.now();
      const rebuilt = await layerOf('two/app'); // packed again from the tree as it is now
      expect(Date.now() - started).toBeLessThan(10_000); // no upload of bad bytes waiting on the registry
      expect(rebuilt.digest).not.toBe(cached);
      expect(rebuilt.digest).toBe((await buildApp('--no-cache')).deps);
      expect((await fetch(`${reg.url}/v2/two/app/blobs/${cached}`)).status).toBe(404); // no wrong bytes under the old name
    } finally {
      await reg.stop();
    }
  }, 90_000);

  it('a warm rebuild pushed to the registry asks about each digest once, sends no PATCH, PUTs the root by tag only, and reads back neither its config nor its SBOM', async () => {
    const reg = await startRegistry({ recordRequests: true });
    try {
      const baseLayout = await OciLayout.init(join(work, 'warm-base'));
      const base = await writeTestImage(baseLayout, { seed: 'warm-base', layers: 1 });
      const baseStore = new RegistryStore(reg.host, 'warm/base', { push: true, locations: new BlobLocations(join(work, 'warm-locations.json')) });
      await copyGraph(baseLayout, baseStore, base.manifest);
      await baseStore.tag(base.manifest, 'v1');
      const buildTo = (tag: string, env: Record<string, string> = {}) =>
        ok(ocitool(['build', '-q', '--app', app, '--from', `docker://${reg.host}/warm/base:v1`, '--tag', `docker://${reg.host}/warm/app:${tag}`], { env: { OCITOOL_CACHE_DIR: join(work, 'warm-cache'), ...env } }));
      await buildTo('v1', { SOURCE_DATE_EPOCH: '1700000000' }); // cold: the dependency layer is packed and cached
      expect(await sbomCreated(reg.url, 'v1')).toBe('2023-11-14T22:13:20Z');
      await writeFile(join(app, 'index.js'), `${await readFile(join(app, 'index.js'), 'utf8')}// one more line\n`);
      const before = (await reg.requests()).length;
      await buildTo('v2');
      const log = (await reg.requests()).slice(before);

      const heads = log.filter((q) => q.method === 'HEAD').map((q) => q.uri.split('/').pop()!);
      expect(heads.filter((d, i) => heads.indexOf(d) !== i)).toEqual([]);
      expect(log.filter((q) => q.method === 'PATCH')).toEqual([]);
      // The base's manifest: one GET by its tag, no HEAD.
      expect(log.filter((q) => q.uri === '/v2/warm/base/manifests/v1').map((q) => q.method)).toEqual(['GET']);

      const root = await manifestOf(reg.url, 'v2');
      expect(log.filter((q) => q.method === 'PUT' && q.uri === '/v2/warm/app/manifests/v2')).toHaveLength(1);
      expect(log.filter((q) => q.method !== 'HEAD' && q.uri.endsWith(`/manifests/${root.digest}`))).toEqual([]); // a HEAD: the copy's check
      expect(log.filter((q) => q.method === 'GET' && q.uri.endsWith(`/blobs/${root.manifest.config.digest}`))).toEqual([]);
      const sbom = await sbomOf(reg.url, root.digest);
      expect(log.filter((q) => q.method === 'PUT' && q.uri === `/v2/warm/app/manifests/${root.digest.replace(':', '-')}`)).toHaveLength(1);
      expect(log.filter((q) => q.method !== 'HEAD' && q.uri.endsWith(`/manifests/${sbom.digest}`)).map((q) => q.method)).toEqual(['PUT']); // no GET back
      // The SBOM takes the build's time (BuildResult.created), not read back from the config.
      const config = (await (await fetch(`${reg.url}/v2/warm/app/blobs/${root.manifest.config.digest}`)).json()) as { created: string };
      expect(await sbomCreated(reg.url, 'v2')).toBe(config.created);
    } finally {
      await reg.stop();
    }
  }, 90_000);
});

/** The manifest of warm/app:TAG in the registry at `url`, and its digest. */
async function manifestOf(url: string, ref: string): Promise<{ digest: string; manifest: ImageManifest }> {
  const res = await fetch(`${url}/v2/warm/app/manifests/${ref}`, { headers: { accept: `${MediaType.OciManifest}, ${MediaType.OciIndex}` } });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { digest: digestOf(bytes), manifest: JSON.parse(bytes.toString()) as ImageManifest };
}

/** The SBOM manifest attached to `subject` in warm/app, found by the fallback tag's index (distribution 2.8 has no referrers API). */
async function sbomOf(url: string, subject: string): Promise<{ digest: string; manifest: ImageManifest }> {
  const index = (await (await fetch(`${url}/v2/warm/app/manifests/${subject.replace(':', '-')}`, { headers: { accept: MediaType.OciIndex } })).json()) as { manifests: { digest: string }[] };
  expect(index.manifests).toHaveLength(1);
  return manifestOf(url, index.manifests[0]!.digest);
}

/** creationInfo.created of the SBOM of warm/app:TAG. */
async function sbomCreated(url: string, tag: string): Promise<string> {
  const sbom = await sbomOf(url, (await manifestOf(url, tag)).digest);
  const doc = (await (await fetch(`${url}/v2/warm/app/blobs/${sbom.manifest.layers[0]!.digest}`)).json()) as { creationInfo: { created: string } };
  return doc.creationInfo.created;
}
