/** rebase in a registry (behind the test proxy, which counts blob reads and uploads) and in a layout; umoci unpacks the result. */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
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

const run = async (args: string[]): Promise<string> => {
  const r = await ocitool(args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-rebase-'));
  layout = join(work, 'img');
  for (const [dir, file, text] of [['base1', 'os-release', 'old base'], ['base2', 'os-release', 'new base'], ['app', 'server.js', 'app']]) {
    await mkdir(join(work, dir!), { recursive: true });
    await writeFile(join(work, dir!, file!), text!);
  }
  await run(['build', '-q', '--tag', `oci:${layout}:base1`, '--add', `${join(work, 'base1')}:/etc`, '--env', 'BASE=1']);
  await run(['build', '-q', '--tag', `oci:${layout}:base2`, '--add', `${join(work, 'base2')}:/etc`, '--env', 'BASE=2']);
  await run(['build', '-q', '--tag', `oci:${layout}:app`, '--from', `oci:${layout}:base1`, '--add', `${join(work, 'app')}:/app`, '--env', 'APP=1', '--entrypoint', '/app/server.js']);
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.host, () => 'none');
  for (const t of ['base1', 'base2', 'app']) await run(['copy', `oci:${layout}:${t}`, `docker://${reg.host}/r/${t}:1`]);
}, 60_000);
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

/** umoci's unpack of `ref` (a layout tag): path → content of the regular files. */
async function unpacked(ref: string, name: string): Promise<Record<string, string>> {
  const dir = join(work, `unpacked-${name}`);
  const r = await umoci(['unpack', '--rootless', '--image', ref, dir]);
  expect(r.code, r.stderr).toBe(0);
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}/${e.name}`);
      else if (e.isFile()) out[`${rel}/${e.name}`] = await readFile(join(d, e.name), 'utf8');
    }
  };
  await walk(join(dir, 'rootfs'), '');
  return out;
}

describe('rebase', () => {
  it('in a registry: reads configs only, mounts the new base layer, keeps the image layer and config; umoci sees the new base', async () => {
    proxy.log.length = 0;
    proxy.bytesIn.PATCH = 0;
    const digest = lastLine(await run(['rebase', `docker://${proxy.host}/r/app:1`, '--old-base', `docker://${proxy.host}/r/base1:1`, '--new-base', `docker://${proxy.host}/r/base2:1`, '--tag', `docker://${proxy.host}/r/app:rebased`]));
    const blobGets = proxy.log.filter((l) => l.method === 'GET' && l.path.includes('/blobs/'));
    expect(blobGets).toHaveLength(3); // the three configs
    expect(proxy.bytesIn.PATCH ?? 0).toBe(0);
    const out = join(work, 'pulled');
    const pulled = await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/r/app:rebased`, `oci:${out}:x`]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(await unpacked(`${out}:x`, 'registry')).toEqual({ '/etc/os-release': 'new base', '/app/server.js': 'app' });
    const cfg = JSON.parse((await skopeo(['inspect', '--config', '--raw', `oci:${out}:x`])).stdout) as { config: { Env: string[]; Entrypoint: string[] }; rootfs: { diff_ids: string[] }; history: unknown[] };
    expect(cfg.config.Env).toContain('APP=1');
    expect(cfg.config.Entrypoint).toEqual(['/app/server.js']);
    expect(cfg.rootfs.diff_ids).toHaveLength(2);
    const manifest = JSON.parse((await skopeo(['inspect', '--raw', `oci:${out}:x`])).stdout) as { annotations: Record<string, string> };
    const base2 = lastLine(await run(['digest', `docker://${reg.host}/r/base2:1`]));
    expect(manifest.annotations['org.opencontainers.image.base.digest']).toBe(base2);
    expect(manifest.annotations['org.opencontainers.image.base.name']).toBe(`${proxy.host}/r/base2:1`);
    expect(digest).toMatch(/^sha256:/);
  }, 60_000);

  it('in a layout; an image not built on --old-base is refused in one line, nothing written', async () => {
    await run(['rebase', `oci:${layout}:app`, '--old-base', `oci:${layout}:base1`, '--new-base', `oci:${layout}:base2`, '--tag', `oci:${layout}:app2`]);
    expect(await unpacked(`${layout}:app2`, 'layout')).toEqual({ '/etc/os-release': 'new base', '/app/server.js': 'app' });
    const v = await ocitool(['verify', layout]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const r = await ocitool(['rebase', `oci:${layout}:app`, '--old-base', `oci:${layout}:base2`, '--new-base', `oci:${layout}:base1`, '--tag', `oci:${layout}:wrong`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('is not built on');
    expect((await ocitool(['inspect', `oci:${layout}:wrong`])).code).toBe(1);
    expect(existsSync(join(layout, 'index.json'))).toBe(true);
  }, 60_000);
});
