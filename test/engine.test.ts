/**
 * The one graph engine, end to end: a conversion that changes nothing keeps every digest, referrers are
 * never dropped silently.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { Descriptor } from '../src/spec/types.js';
import { lastLine, ocitool, jsonEvents } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { tarOf } from './helpers/images.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-engine-'));
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

/** A gzip Docker schema 2 image whose manifest is indented as docker pushes it (three spaces). */
async function indentedDockerImage(dir: string): Promise<{ root: Descriptor; bytes: Buffer }> {
  const layout = await OciLayout.init(dir);
  const tar = await tarOf({ 'hello.txt': 'hello\n' });
  const layer = await layout.putBytes(gzipSync(tar), MediaType.DockerLayerGzip);
  const config = await layout.putBytes(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(tar)] } }), MediaType.DockerConfig);
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifest, config, layers: [layer] }, null, 3));
  const root = await layout.putBytes(bytes, MediaType.DockerManifest);
  await layout.tag(root, 'v1');
  return { root, bytes };
}

describe('a conversion that changes nothing', () => {
  it('copy --format docker and --compression gzip of an indented Docker manifest keep its digest and bytes in the registry', async () => {
    const dir = join(work, 'indented');
    const { root, bytes } = await indentedDockerImage(dir);
    for (const [i, flags] of [['--format', 'docker'], ['--compression', 'gzip'], ['--format', 'docker', '--compression', 'gzip']].entries()) {
      const ref = `docker://${reg.host}/engine/indented:v${i}`;
      const r = await ocitool(['copy', '--insecure', ...flags, `oci:${dir}:v1`, ref]);
      if (r.code !== 0) throw new Error(r.stderr);
      expect(lastLine(r.stdout), flags.join(' ')).toBe(root.digest);
      const raw = await ok(skopeo(['inspect', '--raw', '--tls-verify=false', ref]));
      expect(raw).toBe(bytes.toString());
    }
  });
});

describe('copy --referrers never drops a referrer silently', () => {
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  let sbomFile: string;
  beforeAll(async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(join(work, 'ctx'), { recursive: true });
    await writeFile(join(work, 'ctx/app.txt'), 'app\n');
    sbomFile = join(work, 'sbom.spdx.json');
    await writeFile(sbomFile, '{"spdxVersion":"SPDX-2.3"}');
  });
  const pack = (subject: string): Promise<string> => ok(ocitool(['artifact', 'pack', '--insecure', '--artifact-type', 'application/spdx+json', '--subject', subject, sbomFile], { env }));
  const listed = async (ref: string): Promise<string[]> => (jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', '--insecure', ref])), 'referrer')).map((r) => r.digest);

  it('a conversion that changes the digest is refused in one line, nothing tagged; one that keeps it carries them', async () => {
    const layout = join(work, 'ref-src');
    await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', join(work, 'ctx'), '--created', '1700000000']));
    const image = `docker://${reg.host}/ref/app:v1`;
    await ok(ocitool(['copy', '--insecure', `oci:${layout}:v1`, image]));
    const sbom = lastLine(await pack(image));

    const dst = join(work, 'ref-dst');
    const refused = await ocitool(['copy', '--insecure', '--referrers', '--format', 'docker', image, `oci:${dst}:docker`]);
    expect(refused.code).toBe(1);
    // Progress lines, then one error line.
    expect(refused.stderr.trim().split('\n').filter((l) => l.startsWith('ocitool:'))).toHaveLength(1);
    expect(refused.stderr.trim().split('\n').pop()).toMatch(/has 1 referrer\(s\) naming its digest, which the conversion changed .*signatures would no longer match/);
    const ls = await ocitool(['ls', '-q', dst]);
    expect(ls.stdout).not.toMatch(/docker/);

    const kept = await ocitool(['copy', '--insecure', '--referrers', '--format', 'oci', image, `oci:${dst}:oci`]);
    if (kept.code !== 0) throw new Error(kept.stderr);
    expect(await listed(`oci:${dst}:oci`)).toEqual([sbom]);
  });

  it('--platform: the chosen image\'s referrers are copied, and the index\'s are named in a warning', async () => {
    const layout = join(work, 'ref-multi');
    for (const arch of ['amd64', 'arm64']) await ok(ocitool(['build', '--tag', `oci:${layout}:${arch}`, '--platform', `linux/${arch}`, '--add', join(work, 'ctx'), '--created', '1700000000']));
    await ok(ocitool(['index', 'create', '--tag', `oci:${layout}:multi`, `oci:${layout}:amd64`, `oci:${layout}:arm64`]));
    const index = `docker://${reg.host}/ref/multi:v1`;
    await ok(ocitool(['copy', '--insecure', `oci:${layout}:multi`, index]));
    await pack(index);
    const arm = `docker://${reg.host}/ref/multi@${lastLine(await ok(ocitool(['copy', '--insecure', `oci:${layout}:arm64`, `docker://${reg.host}/ref/multi:arm`])))}`;
    const armSbom = lastLine(await pack(arm));
    const dst = join(work, 'ref-platform');
    const r = await ocitool(['copy', '--insecure', '--referrers', '--platform', 'linux/arm64', index, `oci:${dst}:arm`]);
    if (r.code !== 0) throw new Error(r.stderr);
    expect(r.stderr).toMatch(/warning: copy --referrers: 1 referrer\(s\) of the index sha256:[0-9a-f]{64} are not copied, since only one platform's image/);
    expect(await listed(`oci:${dst}:arm`)).toEqual([armSbom]);
  });
});

describe('lazy images: a build on a registry base', () => {
  it('into the same registry downloads no base layer (mounted); into another one leaves a whole image there', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    const { randomBytes } = await import('node:crypto');
    const baseTree = join(work, 'lazy-base');
    await mkdir(join(baseTree, 'usr/lib'), { recursive: true });
    await writeFile(join(baseTree, 'usr/lib/big.bin'), randomBytes(3 << 20));
    await mkdir(join(work, 'lazy-etc'), { recursive: true });
    await writeFile(join(work, 'lazy-etc/os-release'), 'ID=test\n');
    const layout = join(work, 'lazy-layout');
    await ok(ocitool(['build', '--tag', `oci:${layout}:base`, '--add', baseTree, '--add', `${join(work, 'lazy-etc')}:/etc`]));
    const baseLayers = (JSON.parse(await ok(ocitool(['inspect', `oci:${layout}:base`]))) as { layers: Descriptor[] }).layers.map((l) => l.digest);
    expect(baseLayers).toHaveLength(2);
    await ok(ocitool(['copy', '--insecure', `oci:${layout}:base`, `docker://${reg.host}/lazy/base:v1`]));

    const proxy = await startFaultProxy(reg.host, () => 'none');
    const other = await startRegistry();
    try {
      const app = join(work, 'lazy-app');
      await mkdir(app, { recursive: true });
      await writeFile(join(app, 'main.js'), 'console.log(1)\n');
      const layerGets = (): number => proxy.log.filter((r) => r.method === 'GET' && baseLayers.some((d) => r.path.endsWith(`/blobs/${d}`))).length;
      const same = await ocitool(['build', '--insecure', '--from', `docker://${proxy.host}/lazy/base:v1`, '--tag', `docker://${proxy.host}/lazy/app:v1`, '--add', `${app}:/app`, '--created', '1700000000']);
      if (same.code !== 0) throw new Error(same.stderr);
      expect(layerGets()).toBe(0);
      // Mounted from the base's repository instead.
      for (const d of baseLayers) expect(proxy.log.filter((r) => r.method === 'POST' && (r.path.includes(`mount=${encodeURIComponent(d)}`) || r.path.includes(`mount=${d}`)))).toHaveLength(1);

      const across = await ocitool(['build', '--insecure', '--from', `docker://${proxy.host}/lazy/base:v1`, '--tag', `docker://${other.host}/elsewhere/app:v1`, '--add', `${app}:/app`, '--created', '1700000000']);
      if (across.code !== 0) throw new Error(across.stderr);
      expect(lastLine(across.stdout)).toBe(lastLine(same.stdout));
      // Each base layer crossed once, registry to registry.
      expect(layerGets()).toBe(2);
      for (const [name, host, repo] of [['same', reg.host, 'lazy/app'], ['across', other.host, 'elsewhere/app']] as const) {
        const back = join(work, `lazy-back-${name}`);
        await ok(skopeo(['copy', '--src-tls-verify=false', `docker://${host}/${repo}:v1`, `oci:${back}:v1`]));
        const v = await ocitool(['verify', '--diff-ids', back]);
        expect(v.code, v.stdout + v.stderr).toBe(0);
      }
    } finally {
      await proxy.stop();
      await other.stop();
    }
  });
});
