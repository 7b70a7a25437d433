/**
 * skopeo and umoci as independent writers and readers of OCI layouts: ocitool reads what they write,
 * and they still read a layout after ocitool has tagged, untagged and garbage-collected it.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { verifyLayout } from '../src/layout/verify.js';
import { lastLine, ocitool } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { skopeo, umoci, ok } from './helpers/tools.js';

let work: string;
let umociLayout: string;
let skopeoLayout: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-interop-'));
  const src = join(work, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'hello\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'world\n');
  await symlink('a.txt', join(src, 'link'));
  umociLayout = join(work, 'umoci');
  skopeoLayout = join(work, 'skopeo');
  await ok(umoci(['init', '--layout', umociLayout]));
  await ok(umoci(['new', '--image', `${umociLayout}:base`]));
  await ok(umoci(['insert', '--rootless', '--image', `${umociLayout}:base`, src, '/']));
  await ok(umoci(['config', '--image', `${umociLayout}:base`, '--config.cmd=/bin/sh', '--config.env=A=1']));
  await ok(skopeo(['copy', `oci:${umociLayout}:base`, `oci:${skopeoLayout}:oci`]));
  await ok(skopeo(['copy', '--format', 'v2s2', `oci:${umociLayout}:base`, `oci:${skopeoLayout}:docker`]));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('layouts written by umoci and skopeo', () => {
  it('ls lists their tags', async () => {
    expect(await ok(ocitool(['ls', '-q', umociLayout]))).toBe('base\n');
    expect(await ok(ocitool(['ls', '-q', skopeoLayout]))).toBe('oci\ndocker\n');
  });

  it('inspect shows the manifest and config they wrote', async () => {
    for (const ref of [`oci:${umociLayout}:base`, `oci:${skopeoLayout}:oci`, `oci:${skopeoLayout}:docker`]) {
      const manifest = JSON.parse(await ok(ocitool(['inspect', ref])));
      expect(manifest.layers).toHaveLength(1);
      const config = JSON.parse(await ok(ocitool(['inspect', '--config', ref])));
      expect(config.config.Cmd).toEqual(['/bin/sh']);
      expect(config.config.Env).toContain('A=1');
    }
    const docker = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${skopeoLayout}:docker`])));
    expect(docker.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  });

  it('verify passes, diff_ids included; umoci leaves unreferenced blobs, which are reported', async () => {
    const u = await ocitool(['verify', '--diff-ids', umociLayout]);
    expect(u.code).toBe(0);
    expect(lastLine(u.stdout)).toMatch(/3 blobs verified, [1-9]\d* unreferenced/);
    const s = await ocitool(['verify', '--diff-ids', skopeoLayout]);
    expect(s.code).toBe(0);
    expect(lastLine(s.stdout)).toMatch(/4 blobs verified, 0 unreferenced/);
  });
});

describe('skopeo and umoci read what ocitool leaves', () => {
  it('after tag, rm and gc, skopeo and umoci still read the layout', async () => {
    const dir = join(work, 'gc');
    await ok(skopeo(['copy', `oci:${umociLayout}:base`, `oci:${dir}:kept`]));
    const l = await OciLayout.open(dir);
    const extra = await writeTestImage(l, { tag: 'extra', seed: 'gc' });
    expect(lastLine(await ok(ocitool(['tag', `oci:${dir}:kept`, 'alias'])))).toMatch(/^sha256:/);
    await ok(ocitool(['rm', `oci:${dir}:extra`]));
    const gc = await ok(ocitool(['gc', dir]));
    expect(lastLine(gc)).toMatch(/^removed 4 blobs/);
    expect(await l.stat(extra.manifest.digest)).toBeUndefined();

    const inspected = JSON.parse(await ok(skopeo(['inspect', `oci:${dir}:alias`])));
    expect(inspected.Layers).toHaveLength(1);
    await ok(skopeo(['copy', `oci:${dir}:kept`, `oci:${join(work, 'gc-copy')}:again`]));
    expect((await ok(umoci(['ls', '--layout', dir]))).split('\n').filter(Boolean).sort()).toEqual(['alias', 'kept']);
    await ok(umoci(['unpack', '--rootless', '--image', `${dir}:alias`, join(work, 'bundle')]));
    expect((await verifyLayout(await OciLayout.open(join(work, 'gc-copy')), { diffIds: true })).problems).toEqual([]);
  });

  it('skopeo copies an image ocitool wrote and tagged', async () => {
    const dir = join(work, 'ours');
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1', seed: 'ours' });
    const copy = join(work, 'ours-copy');
    await ok(skopeo(['copy', `oci:${dir}:v1`, `oci:${copy}:v1`]));
    expect((await (await OciLayout.open(copy)).resolve('v1')).digest).toBe(img.manifest.digest);
  });
});
