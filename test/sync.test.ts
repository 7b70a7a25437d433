/**
 * sync and copy --all-tags between real registries (the destination behind the test proxy, which
 * counts what is written), into layouts, from skopeo sync YAML files; skopeo as the independent reader.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { ocitool } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { skopeo, umoci } from './helpers/tools.js';

let work: string;
let src: TestRegistry;
/** tag → digest, per source repository. */
const pushed: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-sync-'));
  src = await startRegistry();
  // Three repositories; tags a and b of lib/one name one image.
  const images: [string, string, string][] = [
    ['lib/one', 'a', 's1'],
    ['lib/one', 'b', 's1'],
    ['lib/one', 'c', 's2'],
    ['lib/two', '1.0', 's3'],
    ['lib/two', '1.1', 's4'],
    ['lib/two', '2.0', 's5'],
    ['other/three', 'latest', 's6'],
  ];
  for (const [repo, tag, seed] of images) {
    const dir = join(work, `img-${seed}`);
    const layout = await OciLayout.init(dir).catch(() => OciLayout.open(dir));
    await writeTestImage(layout, { tag: 'x', seed, layers: 2 });
    const r = await ocitool(['copy', '-q', `oci:${dir}:x`, `docker://${src.host}/${repo}:${tag}`]);
    expect(r.code, r.stderr).toBe(0);
    (pushed[repo] ??= {})[tag] = r.stdout.trim().split('\n').pop()!;
  }
}, 120_000);
afterAll(async () => {
  await src?.stop();
  await rm(work, { recursive: true, force: true });
});

/** skopeo's view of a repository: tag → digest. */
async function view(host: string, repo: string): Promise<Record<string, string>> {
  const tags = await skopeo(['list-tags', '--tls-verify=false', `docker://${host}/${repo}`]);
  if (tags.code !== 0) return {};
  const out: Record<string, string> = {};
  for (const t of (JSON.parse(tags.stdout) as { Tags: string[] }).Tags ?? []) {
    const i = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repo}:${t}`]);
    out[t] = `sha256:${createHash('sha256').update(i.stdout).digest('hex')}`;
  }
  return out;
}

const writes = (p: FaultProxy): { method: string; path: string }[] => p.log.filter((l) => l.method === 'POST' || l.method === 'PUT' || l.method === 'PATCH');

/** A fresh destination registry for the describe block, behind the test proxy that counts what it is sent. */
function counted(): { dst: TestRegistry; proxy: FaultProxy } {
  const it = {} as { dst: TestRegistry; proxy: FaultProxy };
  beforeAll(async () => {
    it.dst = await startRegistry();
    it.proxy = await startFaultProxy(it.dst.host, () => 'none');
  }, 30_000);
  afterAll(async () => {
    await it.proxy?.stop();
    await it.dst?.stop();
  });
  return it;
}

describe('sync into a registry', () => {
  const reg = counted();

  it('a repository: every tag to PREFIX/REPO:TAG, byte-identical manifests; the rerun writes nothing', async () => {
    const r = await ocitool(['sync', `docker://${src.host}/lib/one`, `docker://${reg.proxy.host}/mirror`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('sync: 3 copied, 0 skipped, 0 failed');
    expect(await view(reg.dst.host, 'mirror/lib/one')).toEqual(pushed['lib/one']);
    // Tags a and b name one image: it is copied once (each blob committed once), each manifest in one
    // PUT by its tag, none by digest (a registry stores a manifest PUT by tag under its digest too).
    const manifestPuts = reg.proxy.log.filter((l) => l.method === 'PUT' && l.path.startsWith('/v2/mirror/lib/one/manifests/')).map((l) => l.path.slice('/v2/mirror/lib/one/manifests/'.length));
    expect(manifestPuts.sort()).toEqual(Object.keys(pushed['lib/one']!).sort());
    const commits = reg.proxy.log.filter((l) => l.method === 'PUT' && l.path.includes('/blobs/uploads/')).map((l) => /digest=([^&]+)/.exec(l.path)?.[1]);
    expect(new Set(commits).size).toBe(commits.length);
    reg.proxy.log.length = 0;
    const again = await ocitool(['sync', `docker://${src.host}/lib/one`, `docker://${reg.proxy.host}/mirror`]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('sync: 0 copied, 3 skipped, 0 failed');
    expect(writes(reg.proxy)).toEqual([]);
  }, 60_000);

  it('a skopeo sync YAML file: listed tags, [] for all, a regex, a digest; --dry-run copies nothing', async () => {
    const yaml = join(work, 'sync.yaml');
    await writeFile(
      yaml,
      [
        '# what to mirror',
        `${src.host}:`,
        '  tls-verify: false',
        '  images:',
        '    lib/one:',
        '      - "a"',
        `    other/three: []   # every tag`,
        `    lib/two: ["${pushed['lib/two']!['2.0']}"]`,
        '  images-by-tag-regex:',
        "    lib/two: '^1\\.[0-9]$'",
        '',
      ].join('\n'),
    );
    const dry = await ocitool(['sync', '--dry-run', yaml, `docker://${reg.proxy.host}/y`]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim()).toBe('sync: 5 to copy, 0 skipped, 0 failed');
    expect(await view(reg.dst.host, 'y/lib/one')).toEqual({});
    const r = await ocitool(['sync', yaml, `docker://${reg.proxy.host}/y`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('sync: 5 copied, 0 skipped, 0 failed');
    expect(await view(reg.dst.host, 'y/lib/one')).toEqual({ a: pushed['lib/one']!.a });
    expect(await view(reg.dst.host, 'y/lib/two')).toEqual({ '1.0': pushed['lib/two']!['1.0'], '1.1': pushed['lib/two']!['1.1'] });
    expect(await view(reg.dst.host, 'y/other/three')).toEqual(pushed['other/three']);
    // The digest entry is stored by digest.
    const byDigest = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.dst.host}/y/lib/two@${pushed['lib/two']!['2.0']}`]);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    reg.proxy.log.length = 0;
    const again = await ocitool(['sync', yaml, `docker://${reg.proxy.host}/y`]);
    expect(again.stdout.trim()).toBe('sync: 0 copied, 5 skipped, 0 failed');
    expect(writes(reg.proxy)).toEqual([]);
  }, 90_000);

  it('one image that fails does not stop the rest: each named, exit 1 after all', async () => {
    const yaml = join(work, 'partly.yaml');
    await writeFile(yaml, `${src.host}:\n  images:\n    lib/one: [a, missing]\n    lib/two: ["1.0"]\n`);
    const r = await ocitool(['sync', yaml, `docker://${reg.proxy.host}/partly`]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe('sync: 2 copied, 0 skipped, 1 failed');
    expect(r.stderr).toMatch(/lib\/one:missing/);
    expect(await view(reg.dst.host, 'partly/lib/two')).toEqual({ '1.0': pushed['lib/two']!['1.0'] });
  }, 60_000);

  it('bad YAML and unknown keys are usage errors naming the file and line, before any copy', async () => {
    const cases: [string, RegExp][] = [
      [`${src.host}:\n  images:\n    lib/one: [a\n`, /bad\.yaml:3: .*close/],
      [`${src.host}:\n  imagez: {}\n`, /unknown key "imagez"/],
      [`${src.host}:\n\timages: {}\n`, /bad\.yaml:2: tabs/],
      [`${src.host}:\n  images: {lib/one: [a]}\n  images: {}\n`, /given twice/],
    ];
    for (const [text, message] of cases) {
      const yaml = join(work, 'bad.yaml');
      await writeFile(yaml, text);
      const r = await ocitool(['sync', yaml, `docker://${reg.proxy.host}/bad`]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('sync of images on one base, several at once', () => {
  const reg = counted();

  it('uploads the shared base layer once: the other images wait for it and mount it', async () => {
    const dir = join(work, 'based');
    await mkdir(join(dir, 'base'), { recursive: true });
    await writeFile(join(dir, 'base', 'big.bin'), randomBytes(3 << 20));
    const base = await ocitool(['build', '-q', '--tag', `oci:${dir}/layout:base`, '--add', `${join(dir, 'base')}:/base`]);
    expect(base.code, base.stderr).toBe(0);
    const repos = ['based/a', 'based/b', 'based/c', 'based/d'];
    for (const repo of repos) {
      await mkdir(join(dir, repo), { recursive: true });
      await writeFile(join(dir, repo, 'own.txt'), repo);
      const b = await ocitool(['build', '-q', '--from', `oci:${dir}/layout:base`, '--tag', `docker://${src.host}/${repo}:v1`, '--add', `${join(dir, repo)}:/app`]);
      expect(b.code, b.stderr).toBe(0);
    }
    const manifest = JSON.parse((await ocitool(['inspect', `oci:${dir}/layout:base`])).stdout) as { layers: { digest: string; size: number }[] };
    const baseLayer = manifest.layers.at(-1)!;
    const yaml = join(work, 'based.yaml');
    await writeFile(yaml, `${src.host}:\n  images:\n${repos.map((r) => `    ${r}: [v1]`).join('\n')}\n`);
    const r = await ocitool(['sync', '--jobs', '4', yaml, `docker://${reg.proxy.host}/m`], { env: { OCITOOL_CACHE_DIR: join(dir, 'cache') } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('sync: 4 copied, 0 skipped, 0 failed');
    const committed = reg.proxy.log.filter((l) => l.method === 'PUT' && l.path.includes(`digest=${encodeURIComponent(baseLayer.digest)}`));
    expect(committed).toHaveLength(1);
    expect((reg.proxy.bytesIn.PATCH ?? 0) + (reg.proxy.bytesIn.PUT ?? 0)).toBeLessThan(2 * baseLayer.size);
    for (const repo of repos) expect(Object.keys(await view(reg.dst.host, `m/${repo}`))).toEqual(['v1']);
  }, 90_000);
});

describe('copy --all-tags', () => {
  let dst: TestRegistry;
  beforeAll(async () => {
    dst = await startRegistry();
  }, 30_000);
  afterAll(async () => {
    await dst?.stop();
  });

  it('every tag of a repository to the same tags of another, byte-identical', async () => {
    const r = await ocitool(['copy', '--all-tags', `docker://${src.host}/lib/two`, `docker://${dst.host}/copied/two`]);
    expect(r.code, r.stderr).toBe(0);
    expect(await view(dst.host, 'copied/two')).toEqual(pushed['lib/two']);
  }, 60_000);

  it('into a layout: tags as they are; skopeo and umoci see them', async () => {
    const out = join(work, 'all-tags');
    const r = await ocitool(['copy', '--all-tags', `docker://${src.host}/lib/one`, `oci:${out}`]);
    expect(r.code, r.stderr).toBe(0);
    for (const tag of ['a', 'b', 'c']) {
      const i = await skopeo(['inspect', '--raw', `oci:${out}:${tag}`]);
      expect(i.code, i.stderr).toBe(0);
      expect(`sha256:${createHash('sha256').update(i.stdout).digest('hex')}`).toBe(pushed['lib/one']![tag]);
    }
    const listed = await umoci(['ls', '--layout', out]);
    expect(listed.stdout.trim().split('\n').sort()).toEqual(['a', 'b', 'c']);
  }, 60_000);

  it('sync into a layout tags REPO:TAG; the rerun leaves index.json untouched', async () => {
    const out = join(work, 'sync-layout');
    const r = await ocitool(['sync', `docker://${src.host}/lib/two`, `oci:${out}`]);
    expect(r.code, r.stderr).toBe(0);
    const listed = await umoci(['ls', '--layout', out]);
    expect(listed.stdout.trim().split('\n').sort()).toEqual(['lib/two:1.0', 'lib/two:1.1', 'lib/two:2.0']);
    const i = await skopeo(['inspect', '--raw', `oci:${out}:lib/two:1.1`]);
    expect(`sha256:${createHash('sha256').update(i.stdout).digest('hex')}`).toBe(pushed['lib/two']!['1.1']);
    const before = await stat(join(out, 'index.json'));
    const again = await ocitool(['sync', `docker://${src.host}/lib/two`, `oci:${out}`]);
    expect(again.stdout.trim()).toBe('sync: 0 copied, 3 skipped, 0 failed');
    expect((await stat(join(out, 'index.json'))).mtimeMs).toBe(before.mtimeMs);
  }, 60_000);

  it('a source with a tag is a usage error', async () => {
    const r = await ocitool(['copy', '--all-tags', `docker://${src.host}/lib/one:a`, `docker://${dst.host}/x`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('without a tag');
  });
});
