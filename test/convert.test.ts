/**
 * Conversion (issue 5) against independent implementations: skopeo writes schema 1 images into the
 * real registry (with schema 1 enabled), ocitool and skopeo both convert them, and the results must
 * agree: layers, diff_ids, history with its empty-layer marks, and the runtime config.
 */
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../src/spec/types.js';
import { lastLine, ocitool } from './helpers/cli.js';
import { tarOf } from './helpers/images.js';
import { startRegistry, skopeoRegistryFlags, type TestRegistry } from './helpers/registry.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;

/**
 * An image with three layers and config-only steps between them (ENV, LABEL, EXPOSE, CMD: history
 * entries with empty_layer), as docker build makes, written into a layout.
 */
async function writeBuiltImage(dir: string): Promise<void> {
  const layout = await OciLayout.init(dir);
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  const contents: Record<string, string>[] = [{ 'etc/os-release': 'ID=test\n' }, { 'app/run.sh': '#!/bin/sh\necho <hi> & bye\n' }, { 'app/data.txt': 'x'.repeat(5000) }];
  for (const [i, files] of contents.entries()) {
    const tar = await tarOf({ ...files, [`layer-${i}`]: String(i) });
    diffIds.push(digestOf(tar));
    layers.push(await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip));
  }
  const t = (s: number): string => new Date(Date.UTC(2021, 0, 1, 0, 0, s)).toISOString();
  const config: ImageConfig = {
    created: t(9),
    author: 'ocitool tests <tests@example.com>',
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin', 'GREETING=a <b> & c'], Cmd: ['/app/run.sh'], WorkingDir: '/app', Labels: { 'org.example.z': '1', 'org.example.a': '2' }, ExposedPorts: { '8080/tcp': {} }, User: '1000' },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [
      { created: t(1), created_by: '/bin/sh -c #(nop) ADD file:os in /' },
      { created: t(2), created_by: '/bin/sh -c #(nop)  ENV GREETING=a <b> & c', empty_layer: true },
      { created: t(3), created_by: '/bin/sh -c #(nop) COPY file:run in /app', author: 'someone', comment: 'a comment' },
      { created: t(4), created_by: '/bin/sh -c #(nop)  LABEL org.example.a=2', empty_layer: true },
      { created: t(5), created_by: '/bin/sh -c #(nop)  EXPOSE 8080', empty_layer: true },
      { created: t(6), created_by: '/bin/sh -c #(nop) COPY file:data in /app' },
      { created: t(7), created_by: '/bin/sh -c #(nop)  CMD ["/app/run.sh"]', empty_layer: true },
    ],
  };
  const cfg = await layout.putBytes(JSON.stringify(config), MediaType.OciConfig);
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers };
  await layout.tag(await layout.putBytes(JSON.stringify(m), MediaType.OciManifest), 'v1');
}

/** The manifest and config of a tagged image in a layout. */
async function imageIn(dir: string, tag: string): Promise<{ manifest: ImageManifest; config: ImageConfig; configBytes: Buffer; manifestBytes: Buffer }> {
  const layout = await OciLayout.open(dir);
  const desc = await layout.resolve(tag);
  const manifestBytes = await layout.fetchBytes(desc);
  const manifest = JSON.parse(manifestBytes.toString()) as ImageManifest;
  const configBytes = await layout.fetchBytes(manifest.config);
  return { manifest, config: JSON.parse(configBytes.toString()) as ImageConfig, configBytes, manifestBytes };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-convert-'));
  reg = await startRegistry({ schema1: true });
  await writeBuiltImage(join(work, 'built'));
  // skopeo makes the schema 1 image (signed with a throwaway key, as docker did).
  await ok(skopeo(['copy', '--format', 'v2s1', ...skopeoRegistryFlags(reg, 'dest'), `oci:${join(work, 'built')}:v1`, `docker://${reg.host}/legacy/app:1`]));
});
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('schema 1 conversion, against skopeo', () => {
  it('the registry serves schema 1 (signed) for the image skopeo pushed', async () => {
    const raw = JSON.parse(await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/legacy/app:1`]))) as { schemaVersion: number; signatures?: unknown[]; fsLayers: unknown[] };
    expect(raw.schemaVersion).toBe(1);
    expect(raw.signatures?.length).toBe(1);
    expect(raw.fsLayers).toHaveLength(7);
  });

  it.each(['oci', 'docker'] as const)('converts to %s as skopeo does: layers, diff_ids, history, runtime config', async (format) => {
    const ours = join(work, `ours-${format}`);
    const theirs = join(work, `theirs-${format}`);
    const res = await ocitool(['convert', '--format', format, `docker://${reg.host}/legacy/app:1`, `oci:${ours}:c`]);
    if (res.code !== 0) throw new Error(`${res.stderr}\n${reg.log()}`);
    await ok(skopeo(['copy', '--format', format === 'oci' ? 'oci' : 'v2s2', ...skopeoRegistryFlags(reg, 'src'), `docker://${reg.host}/legacy/app:1`, `oci:${theirs}:c`]));
    const a = await imageIn(ours, 'c');
    const b = await imageIn(theirs, 'c');
    expect(a.manifest.mediaType).toBe(format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest);
    expect(a.manifest.layers.map((l) => [l.mediaType, l.digest, l.size])).toEqual(b.manifest.layers.map((l) => [l.mediaType, l.digest, l.size]));
    expect(a.manifest.layers).toHaveLength(3);
    expect(a.config.rootfs).toEqual(b.config.rootfs);
    expect(a.config.history).toEqual(b.config.history);
    expect(a.config.history?.filter((h) => h.empty_layer)).toHaveLength(4);
    expect(a.config.config).toEqual(b.config.config);
    expect(a.config.config?.Env).toContain('GREETING=a <b> & c');
    // The same bytes, so the same image ID and manifest digest.
    expect(digestOf(a.configBytes)).toBe(digestOf(b.configBytes));
    expect(lastLine(res.stdout)).toBe(digestOf(b.manifestBytes));
    await ok(ocitool(['verify', '--diff-ids', ours]));
  });

  it('copies schema 1 between registries as it is, its digest kept', async () => {
    const res = await ocitool(['copy', `docker://${reg.host}/legacy/app:1`, `docker://${reg.host}/legacy/copy:1`]);
    if (res.code !== 0) throw new Error(`${res.stderr}\n${reg.log()}`);
    const digest = (ref: string): Promise<string> => ok(skopeo(['inspect', '--format', '{{.Digest}}', ...skopeoRegistryFlags(reg, 'plain'), ref])).then((s) => s.trim());
    expect(await digest(`docker://${reg.host}/legacy/copy:1`)).toBe(await digest(`docker://${reg.host}/legacy/app:1`));
    expect(lastLine(res.stdout)).toBe(await digest(`docker://${reg.host}/legacy/app:1`));
  });

  it('copy into a layout converts schema 1 to OCI on the way, as skopeo does', async () => {
    const out = join(work, 'copied');
    await ok(ocitool(['copy', `docker://${reg.host}/legacy/app:1`, `oci:${out}:c`]));
    expect((await imageIn(out, 'c')).manifest.mediaType).toBe(MediaType.OciManifest);
    expect(JSON.parse(await readFile(join(out, 'index.json'), 'utf8')).manifests).toHaveLength(1);
  });
});

describe('hand-made schema 1 edge cases (testdata/schema1-cases, skopeo dir: format)', () => {
  const cases = join(import.meta.dirname, '../testdata/schema1-cases');
  const convertBoth = async (name: string, extra: string[] = []): Promise<{ ours: Awaited<ReturnType<typeof imageIn>>; theirs: Awaited<ReturnType<typeof imageIn>>; stderr: string }> => {
    const ours = join(work, `case-ours-${name}`);
    const theirs = join(work, `case-theirs-${name}`);
    const res = await ocitool(['convert', ...extra, `dir:${join(cases, name)}`, `oci:${ours}:x`]);
    if (res.code !== 0) throw new Error(res.stderr);
    await ok(skopeo(['copy', `dir:${join(cases, name)}`, `oci:${theirs}:x`]));
    const [a, b] = [await imageIn(ours, 'x'), await imageIn(theirs, 'x')];
    expect(digestOf(a.manifestBytes)).toBe(digestOf(b.manifestBytes));
    expect(digestOf(a.configBytes)).toBe(digestOf(b.configBytes));
    return { ours: a, theirs: b, stderr: res.stderr };
  };

  it('empty layers first and last become empty_layer history, not layers', async () => {
    const { ours } = await convertBoth('empty-first-last');
    expect(ours.manifest.layers).toHaveLength(2);
    expect(ours.config.history?.map((h) => h.empty_layer === true)).toEqual([true, false, true, false, true]);
    expect(ours.config.history?.[0]?.created_by).toBe('/bin/sh -c step 0');
  });

  it('a layer blob used twice stays two layers', async () => {
    const { ours } = await convertBoth('duplicate-layer');
    const digests = ours.manifest.layers.map((l) => l.digest);
    expect(digests).toHaveLength(3);
    expect(digests[0]).toBe(digests[2]);
    expect(ours.config.rootfs.diff_ids[0]).toBe(ours.config.rootfs.diff_ids[2]);
  });

  it('missing optional fields (created, author, Cmd) convert as Go zero values', async () => {
    const { ours } = await convertBoth('missing-fields');
    expect(ours.config.history).toEqual([{ created: '0001-01-01T00:00:00Z' }, { created: '0001-01-01T00:00:00Z' }]);
  });

  it('a valid signature verifies; a bad one is refused, or converted with a warning when told to', async () => {
    await convertBoth('good-signature');
    const refused = await ocitool(['convert', `dir:${join(cases, 'bad-signature')}`, `oci:${join(work, 'bad')}:x`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/bad-signature: signature 1 of 1 does not verify/);
    const { stderr } = await convertBoth('bad-signature', ['--ignore-signatures']);
    expect(stderr).toMatch(/warning: .* does not verify.*converting it anyway/);
  });

  it('a signed manifest says only what its signature covers: members appended after the payload are ignored', async () => {
    // Members after formatLength keep the digest and the signature, and would win as JSON's last key.
    const tampered = join(work, 'tampered-case');
    await cp(join(cases, 'good-signature'), tampered, { recursive: true });
    const text = await readFile(join(tampered, 'manifest.json'), 'utf8');
    const v1 = JSON.stringify(JSON.stringify({ id: 'f'.repeat(64), created: '2021-01-01T00:00:00Z' }));
    const extra = `,\n   "fsLayers": [{"blobSum": "sha256:15b6ad84e33d66efc338b18b78704f4c97a3a4129fd900081d1ed8fb34cd004a"}],\n   "history": [{"v1Compatibility": ${v1}}]\n}`;
    await writeFile(join(tampered, 'manifest.json'), text.replace(/\n\}\s*$/, extra));
    expect(JSON.parse(await readFile(join(tampered, 'manifest.json'), 'utf8')).fsLayers).toHaveLength(1);
    const ours = await ocitool(['convert', `dir:${tampered}`, `oci:${join(work, 'tampered-out')}:x`]);
    expect(ours.code).toBe(0);
    const untampered = await ok(ocitool(['convert', `dir:${join(cases, 'good-signature')}`, `oci:${join(work, 'untampered-out')}:x`]));
    expect(lastLine(ours.stdout)).toBe(lastLine(untampered));
    expect((await imageIn(join(work, 'tampered-out'), 'x')).manifest.layers).toHaveLength(2);
  });

  it('--manifest FILE converts a manifest kept apart, its blobs read from an OCI layout', async () => {
    const layoutDir = join(work, 'blobs-layout');
    const layout = await OciLayout.init(layoutDir);
    for (const name of await readdir(join(cases, 'duplicate-layer'))) {
      if (/^[0-9a-f]{64}$/.test(name)) await layout.putBytes(await readFile(join(cases, 'duplicate-layer', name)), 'application/octet-stream');
    }
    const out = join(work, 'from-manifest-file');
    const res = await ok(ocitool(['convert', '--manifest', join(cases, 'duplicate-layer', 'manifest.json'), `oci:${layoutDir}`, `oci:${out}:m`]));
    const viaDir = await ok(ocitool(['convert', `dir:${join(cases, 'duplicate-layer')}`, `oci:${out}:d`]));
    expect(lastLine(res)).toBe(lastLine(viaDir));
  });

  it('fsLayers and history of different lengths: one clear line, exit 1, nothing tagged', async () => {
    const out = join(work, 'mismatch');
    const res = await ocitool(['convert', `dir:${join(cases, 'count-mismatch')}`, `oci:${out}:x`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^ocitool: schema 1 manifest sha256:[0-9a-f]{64} of dir:.*count-mismatch: fsLayers has 2 entries but history has 1; they must pair up one to one\n$/);
    const r = await ocitool(['ls', out]);
    expect(r.stdout).not.toMatch(/\bx\b/);
  });
});

describe('Docker <-> OCI and recompression', () => {
  let built: string;
  let original: string;
  beforeAll(async () => {
    built = join(work, 'built');
    original = (await OciLayout.open(built).then((l) => l.resolve('v1'))).digest;
  });

  it('--format docker yields Docker schema 2 media types throughout; converting back gives the original OCI bytes', async () => {
    const docker = join(work, 'as-docker');
    await ok(ocitool(['convert', '--format', 'docker', `oci:${built}:v1`, `oci:${docker}:d`]));
    const d = await imageIn(docker, 'd');
    expect(d.manifest.mediaType).toBe(MediaType.DockerManifest);
    expect(d.manifest.config.mediaType).toBe(MediaType.DockerConfig);
    expect(new Set(d.manifest.layers.map((l) => l.mediaType))).toEqual(new Set([MediaType.DockerLayerGzip]));
    // Through the registry (skopeo does not look up Docker manifests in OCI layouts): skopeo reads
    // Docker schema 2 with the same layers.
    await ok(ocitool(['convert', '--format', 'docker', `oci:${built}:v1`, `docker://${reg.host}/fmt/docker:d`]));
    const raw = JSON.parse(await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/fmt/docker:d`]))) as ImageManifest;
    expect(raw.mediaType).toBe(MediaType.DockerManifest);
    expect(raw.layers).toEqual(d.manifest.layers);
    const back = join(work, 'back-to-oci');
    const res = await ok(ocitool(['convert', `docker://${reg.host}/fmt/docker:d`, `oci:${back}:o`]));
    expect(lastLine(res)).toBe(original);
    expect((await imageIn(back, 'o')).manifestBytes.equals((await imageIn(built, 'v1')).manifestBytes)).toBe(true);
  });

  it.each(['none', 'zstd'] as const)('--compression %s re-encodes layers with the same diff_ids; gzip again restores the digests', async (compression) => {
    const out = join(work, `re-${compression}`);
    await ok(ocitool(['convert', '--compression', compression, `oci:${built}:v1`, `oci:${out}:c`]));
    const c = await imageIn(out, 'c');
    const b = await imageIn(built, 'v1');
    expect(c.manifest.layers.map((l) => l.mediaType)).toEqual(b.manifest.layers.map(() => (compression === 'none' ? MediaType.OciLayer : MediaType.OciLayerZstd)));
    expect(c.config.rootfs.diff_ids).toEqual(b.config.rootfs.diff_ids);
    expect(c.manifest.layers.map((l) => l.digest)).not.toEqual(b.manifest.layers.map((l) => l.digest));
    if (compression === 'none') await ok(ocitool(['verify', '--diff-ids', out]));
    // skopeo (containers/image) reads the re-encoded layers back to the same diff_ids.
    const viaSkopeo = join(work, `skopeo-${compression}`);
    await ok(skopeo(['copy', '--dest-compress-format', 'gzip', `oci:${out}:c`, `oci:${viaSkopeo}:c`]));
    expect((await imageIn(viaSkopeo, 'c')).config.rootfs.diff_ids).toEqual(b.config.rootfs.diff_ids);
    // Back to gzip: ocitool's gzip is deterministic, so the original layer digests return.
    const again = join(work, `again-${compression}`);
    await ok(ocitool(['convert', '--compression', 'gzip', `oci:${out}:c`, `oci:${again}:g`]));
    expect((await imageIn(again, 'g')).manifest.layers.map((l) => l.digest)).toEqual(b.manifest.layers.map((l) => l.digest));
  });

  it('a layer already in the wanted compression is not re-encoded', async () => {
    const out = join(work, 'same-gzip');
    const res = await ok(ocitool(['convert', '--compression', 'gzip', `oci:${built}:v1`, `oci:${out}:c`]));
    expect(lastLine(res)).toBe(original);
  });

  it('zstd has no Docker form: a usage error', async () => {
    const res = await ocitool(['convert', '--format', 'docker', '--compression', 'zstd', `oci:${built}:v1`, `oci:${join(work, 'nope')}:c`]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Docker schema 2 has no zstd layers/);
  });
});

describe('indexes and foreign layers', () => {
  it('an index converts to a Docker manifest list (children too) and back to the same bytes', async () => {
    const built = join(work, 'built');
    const multi = join(work, 'multi');
    await ok(ocitool(['copy', `oci:${built}:v1`, `oci:${multi}:amd`]));
    const idx = lastLine(await ok(ocitool(['index', 'create', '--tag', `oci:${multi}:all`, `oci:${multi}:amd`])));
    const list = join(work, 'as-list');
    await ok(ocitool(['convert', '--format', 'docker', `oci:${multi}:all`, `oci:${list}:l`]));
    const l = await OciLayout.open(list);
    const root = await l.resolve('l');
    expect(root.mediaType).toBe(MediaType.DockerManifestList);
    const doc = JSON.parse((await l.fetchBytes(root)).toString()) as { mediaType: string; manifests: Descriptor[] };
    expect(doc.mediaType).toBe(MediaType.DockerManifestList);
    expect(doc.manifests.map((m) => m.mediaType)).toEqual([MediaType.DockerManifest]);
    expect(doc.manifests[0]!.platform).toEqual({ architecture: 'amd64', os: 'linux' });
    const back = join(work, 'list-back');
    expect(lastLine(await ok(ocitool(['convert', `oci:${list}:l`, `oci:${back}:b`])))).toBe(idx);
  });

  it('a foreign layer with URLs is renamed, never copied or re-encoded; its URLs stay', async () => {
    const dir = join(work, 'foreign');
    const layout = await OciLayout.init(dir);
    const tar = await tarOf({ 'x.txt': 'x' });
    const local = await layout.putBytes(gzipSync(tar), MediaType.DockerLayerGzip);
    const foreign: Descriptor = { mediaType: MediaType.DockerForeignLayerGzip, digest: `sha256:${'ab'.repeat(32)}`, size: 12345, urls: ['https://example.com/layer.tar.gz'] };
    const cfg = await layout.putBytes(JSON.stringify({ architecture: 'amd64', os: 'windows', rootfs: { type: 'layers', diff_ids: [`sha256:${'cd'.repeat(32)}`, digestOf(tar)] } }), MediaType.DockerConfig);
    const m = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config: cfg, layers: [foreign, local] };
    await layout.tag(await layout.putBytes(JSON.stringify(m), MediaType.DockerManifest), 'w');
    await ok(ocitool(['verify', dir]));
    const out = join(work, 'foreign-oci');
    await ok(ocitool(['convert', '--compression', 'none', `oci:${dir}:w`, `oci:${out}:o`]));
    const got = await imageIn(out, 'o');
    expect(got.manifest.layers[0]).toEqual({ ...foreign, mediaType: MediaType.OciLayerNondistributableGzip });
    expect(got.manifest.layers[1]!.mediaType).toBe(MediaType.OciLayer);
    await ok(ocitool(['verify', out]));
  });
});
