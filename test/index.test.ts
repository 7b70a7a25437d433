/** Multi-platform indexes (read back by skopeo) and Docker-format builds. */
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLine, ocitool } from './helpers/cli.js';
import { makeTree } from './helpers/trees.js';
import { skopeo, ok } from './helpers/tools.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-index-'));
  src = join(work, 'src');
  await makeTree(src, { 'etc/os-release': 'ID=test\n' });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('ocitool index', () => {
  it('create assembles an index from per-platform images; add replaces a platform; skopeo reads it', async () => {
    const l = join(work, 'multi');
    const build = (tag: string, platform: string, env: string) => ok(ocitool(['build', '--tag', `oci:${l}:${tag}`, '--platform', platform, '--add', src, '--env', env]));
    const amd = lastLine(await build('amd', 'linux/amd64', 'ARCH=amd64'));
    const arm = lastLine(await build('arm', 'linux/arm64', 'ARCH=arm64'));
    const idx = lastLine(await ok(ocitool(['index', 'create', '--tag', `oci:${l}:multi`, `oci:${l}:amd`, `oci:${l}:arm`])));
    expect(idx).toMatch(/^sha256:/);
    const raw = JSON.parse(await ok(skopeo(['inspect', '--raw', `oci:${l}:multi`])));
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(raw.manifests.map((m: { digest: string; platform: { architecture: string } }) => [m.digest, m.platform.architecture])).toEqual([
      [amd, 'amd64'],
      [arm, 'arm64'],
    ]);
    const armCfg = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', '--config', `oci:${l}:multi`])));
    expect(armCfg.config.Env).toContain('ARCH=arm64');

    const arm2 = lastLine(await build('arm2', 'linux/arm64', 'ARCH=arm64-v2'));
    const riscv = lastLine(await build('riscv', 'linux/riscv64', 'ARCH=riscv64'));
    await ok(ocitool(['index', 'add', '--tag', `oci:${l}:multi`, `oci:${l}:arm2`, `oci:${l}:riscv`]));
    const after = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${l}:multi`])));
    expect(after.manifests.map((m: { digest: string }) => m.digest)).toEqual([amd, arm2, riscv]);
    await ok(ocitool(['verify', l]));
    await ok(skopeo(['copy', '--all', `oci:${l}:multi`, `oci:${join(work, 'copy')}:multi`]));

    const dup = await ocitool(['index', 'create', '--tag', `oci:${l}:dup`, `oci:${l}:arm`, `oci:${l}:arm2`]);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/a second image for platform linux\/arm64/);
  });

  it('--format docker builds Docker schema 2 media types throughout, also from an OCI base', async () => {
    const l = join(work, 'docker');
    await ok(ocitool(['build', '--tag', `oci:${l}:base`, '--add', src]));
    await ok(ocitool(['build', '--tag', `oci:${l}:d`, '--from', `oci:${l}:base`, '--add', `${src}:/more`, '--format', 'docker']));
    // (skopeo 1.9 resolves only OCI-typed index.json entries, so it cannot name this one by tag.)
    const m = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${l}:d`])));
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect(m.layers.map((x: { mediaType: string }) => x.mediaType)).toEqual(['application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar.gzip']);
    await ok(ocitool(['verify', '--diff-ids', l]));
    const list = await ok(ocitool(['index', 'create', '--format', 'docker', '--tag', `oci:${l}:list`, `oci:${l}:d`]));
    expect(JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${l}:list`]))).mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(lastLine(list)).toMatch(/^sha256:/);
  });

  it('--compression none writes plain tar layers; zstd goes through the zstd program, refused without it', async () => {
    const l = join(work, 'plain');
    await ok(ocitool(['build', '--tag', `oci:${l}:p`, '--add', src, '--compression', 'none']));
    const m = JSON.parse(await ok(ocitool(['inspect', `oci:${l}:p`])));
    expect(m.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    await ok(ocitool(['verify', '--diff-ids', l]));
    await ok(ocitool(['build', '--tag', `oci:${l}:z`, '--add', src, '--compression', 'zstd']));
    const zm = JSON.parse(await ok(ocitool(['inspect', `oci:${l}:z`])));
    expect(zm.layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(zm.layers[0].digest).not.toBe(m.layers[0].digest);
    await ok(ocitool(['verify', '--diff-ids', l])); // the zstd layer decompresses to its diff_id
    // Without the zstd program on PATH: one line saying what is missing.
    const bin = join(work, 'node-only');
    await mkdir(bin, { recursive: true });
    await symlink(process.execPath, join(bin, 'node')).catch(() => undefined);
    const z = await ocitool(['build', '--tag', `oci:${l}:z2`, '--add', src, '--compression', 'zstd'], { env: { ...process.env, PATH: bin } });
    expect(z.code).toBe(1);
    expect(z.stderr).toMatch(/^ocitool: zstd compression needs the zstd program \(Node 20's zlib has no zstd\)/);
  });
});
