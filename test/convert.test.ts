/**
 * Conversion (issue 5) against independent implementations: skopeo writes schema 1 images into the
 * real registry (with schema 1 enabled), ocitool and skopeo both convert them, and the results must
 * agree: layers, diff_ids, history with its empty-layer marks, and the runtime config.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
  for (const [i, files] of [{ 'etc/os-release': 'ID=test\n' }, { 'app/run.sh': '#!/bin/sh\necho <hi> & bye\n' }, { 'app/data.txt': 'x'.repeat(5000) }].entries()) {
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
