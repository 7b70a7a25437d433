/**
 * mutate against the real registry (behind the test proxy, which counts what is read and written) and
 * layouts; skopeo and umoci as the independent readers.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLine, ocitool } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { skopeo, umoci } from './helpers/tools.js';

let work: string;
let layout: string;
let reg: TestRegistry;
let proxy: FaultProxy;

interface Config {
  created: string;
  config: { Env?: string[]; Labels?: Record<string, string>; Entrypoint?: string[]; Cmd?: string[]; User?: string; ExposedPorts?: Record<string, unknown> };
  history: unknown[];
}
interface Manifest {
  config: { digest: string };
  layers: { digest: string }[];
  annotations?: Record<string, string>;
}

const run = async (args: string[]): Promise<string> => {
  const r = await ocitool(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};
const json = async <T>(args: string[]): Promise<T> => JSON.parse((await skopeo(args)).stdout) as T;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-mutate-'));
  layout = join(work, 'img');
  await mkdir(join(work, 'app'), { recursive: true });
  await writeFile(join(work, 'app', 'a.txt'), 'a');
  await run(['build', '-q', '--tag', `oci:${layout}:v1`, '--add', `${join(work, 'app')}:/app`, '--add', `${join(work, 'app')}:/more`, '--label', 'keep=1', '--label', 'drop=2', '--env', 'A=1', '--env', 'B=2', '--created', '2024-01-01T00:00:00Z']);
  await run(['build', '-q', '--tag', `oci:${layout}:arm`, '--platform', 'linux/arm64', '--add', `${join(work, 'app')}:/app`, '--created', '2024-01-01T00:00:00Z']);
  await run(['index', 'create', '--tag', `oci:${layout}:multi`, `oci:${layout}:v1`, `oci:${layout}:arm`]);
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host, () => 'none');
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('mutate in a registry', () => {
  it('reads the manifest and config only, writes a config and a manifest only, and moves the tag', async () => {
    await run(['copy', `oci:${layout}:v1`, `docker://${reg.host}/m/app:v1`]);
    const before = await json<Manifest>(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/app:v1`]);
    const beforeCfg = await json<Config>(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/m/app:v1`]);
    proxy.log.length = 0;
    const digest = lastLine(await run(['mutate', `docker://${proxy.host}/m/app:v1`, '--label', 'tier=web', '--unset-label', 'drop', '--env', 'A=9', '--unset-env', 'B', '--user', '1000', '--expose', '8080', '--annotation', 'org.example=yes']));
    const blobGets = proxy.log.filter((l) => l.method === 'GET' && l.path.includes('/blobs/'));
    expect(blobGets.map((l) => l.path.split('/').pop())).toEqual([before.config.digest]);
    const uploads = proxy.log.filter((l) => l.method === 'PATCH' || (l.method === 'PUT' && l.path.includes('/blobs/')));
    expect(uploads.length).toBeLessThanOrEqual(1); // the config, in one PUT
    expect(proxy.bytesIn.PATCH ?? 0).toBe(0);
    const after = await json<Manifest>(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/app:v1`]);
    expect(after.layers).toEqual(before.layers);
    expect(after.annotations?.['org.example']).toBe('yes');
    const inspected = await json<{ Digest: string; Labels: Record<string, string>; Env: string[] }>(['inspect', '--tls-verify=false', `docker://${reg.host}/m/app:v1`]);
    expect(inspected.Digest).toBe(digest);
    expect(inspected.Labels).toEqual({ keep: '1', tier: 'web' });
    expect(inspected.Env).toEqual(['A=9']);
    const cfg = await json<Config>(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/m/app:v1`]);
    expect(cfg.config.User).toBe('1000');
    expect(cfg.config.ExposedPorts).toEqual({ '8080/tcp': {} });
    // No history entry, no new created time: an edit, not a build step.
    expect(cfg.created).toBe('2024-01-01T00:00:00Z');
    expect(cfg.history).toEqual(beforeCfg.history);
  }, 60_000);

  it('--tag into another repository mounts the layers instead of uploading them; the source keeps its image', async () => {
    const src = lastLine(await run(['copy', `oci:${layout}:v1`, `docker://${reg.host}/m/base:v1`]));
    proxy.log.length = 0;
    proxy.bytesIn.PATCH = 0;
    await run(['mutate', `docker://${proxy.host}/m/base:v1`, '--tag', `docker://${proxy.host}/m/other:v1`, '--cmd', 'serve']);
    expect(proxy.log.filter((l) => l.method === 'GET' && l.path.includes('/blobs/'))).toHaveLength(1);
    expect(proxy.log.filter((l) => l.method === 'POST' && l.path.includes('mount=')).length).toBeGreaterThanOrEqual(2);
    expect(proxy.bytesIn.PATCH ?? 0).toBe(0);
    expect((await json<{ Digest: string }>(['inspect', '--tls-verify=false', `docker://${reg.host}/m/base:v1`])).Digest).toBe(src);
    const cfg = await json<Config>(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/m/other:v1`]);
    expect(cfg.config.Cmd).toEqual(['serve']);
  }, 60_000);
});

describe('mutate in a layout', () => {
  it('--tag in the same layout: umoci and skopeo read the edit; the source tag keeps its image', async () => {
    const v1 = lastLine(await run(['digest', `oci:${layout}:v1`]));
    await run(['mutate', `oci:${layout}:v1`, '--tag', `oci:${layout}:edited`, '--entrypoint', '/bin/app', '--workdir', '/app']);
    expect(lastLine(await run(['digest', `oci:${layout}:v1`]))).toBe(v1);
    const cfg = await json<Config & { config: { WorkingDir?: string } }>(['inspect', '--config', '--raw', `oci:${layout}:edited`]);
    expect(cfg.config.Entrypoint).toEqual(['/bin/app']);
    expect(cfg.config.WorkingDir).toBe('/app');
    const stat = await umoci(['stat', '--image', `${layout}:edited`]);
    expect(stat.code, stat.stderr).toBe(0);
    expect((await run(['verify', layout])).length).toBeGreaterThan(0);
  }, 60_000);

  it('an index: every image edited (or one with --platform), entries keep their platforms', async () => {
    await run(['mutate', `oci:${layout}:multi`, '--tag', `oci:${layout}:multi-all`, '--label', 'all=1']);
    for (const p of ['linux/amd64', 'linux/arm64']) {
      const [os, arch] = p.split('/');
      const cfg = await json<Config>(['inspect', '--config', '--raw', '--override-os', os!, '--override-arch', arch!, `oci:${layout}:multi-all`]);
      expect(cfg.config.Labels?.all, p).toBe('1');
    }
    await run(['mutate', `oci:${layout}:multi`, '--tag', `oci:${layout}:multi-arm`, '--platform', 'linux/arm64', '--label', 'arm=1']);
    const arm = await json<Config>(['inspect', '--config', '--raw', '--override-arch', 'arm64', `oci:${layout}:multi-arm`]);
    const amd = await json<Config>(['inspect', '--config', '--raw', '--override-arch', 'amd64', `oci:${layout}:multi-arm`]);
    expect(arm.config.Labels?.arm).toBe('1');
    expect(amd.config.Labels?.arm).toBeUndefined();
  }, 60_000);

  it('no change keeps the digest; bad flags are usage errors before anything is read', async () => {
    const v1 = lastLine(await run(['digest', `oci:${layout}:v1`]));
    expect(lastLine(await run(['mutate', `oci:${layout}:v1`, '--tag', `oci:${layout}:same`]))).toBe(v1);
    for (const args of [
      ['--label', 'novalue'],
      ['--unset-env', 'A=1'],
      ['--created', 'yesterday'],
      ['--expose', 'http'],
      ['--entrypoint', '[broken'],
    ]) {
      const r = await ocitool(['mutate', `docker://127.0.0.1:1/never/asked:v1`, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 60_000);

  it('a Docker image into a layout comes out OCI (annotations allowed); in a registry an annotation on it is refused', async () => {
    const docker = join(work, 'docker');
    await run(['build', '-q', '--tag', `docker://${reg.host}/m/docker:d`, '--format', 'docker', '--add', `${join(work, 'app')}:/app`]);
    await run(['mutate', `docker://${reg.host}/m/docker:d`, '--tag', `oci:${docker}:annotated`, '--annotation', 'a=b', '--label', 'l=1']);
    const m = await json<{ mediaType: string; config: { mediaType: string }; layers: { mediaType: string }[]; annotations?: Record<string, string> }>(['inspect', '--raw', `oci:${docker}:annotated`]);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip')).toBe(true);
    expect(m.annotations?.a).toBe('b');
    expect((await umoci(['stat', '--image', `${docker}:annotated`])).code).toBe(0);
    const r = await ocitool(['mutate', `docker://${reg.host}/m/docker:d`, '--tag', `docker://${reg.host}/m/docker:annotated`, '--annotation', 'a=b']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Docker schema 2 manifest has no annotations/);
    expect((await ocitool(['inspect', `docker://${reg.host}/m/docker:annotated`])).code).toBe(1);
  }, 60_000);
});
