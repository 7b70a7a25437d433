/**
 * Multi-platform builds: `build --platform A,B` (with --app, and with --add alone) on a two-platform
 * base index made here gives one index whose images sit on their platform's base layers and share
 * the new layers (made once); into a layout and the real registry, read back by skopeo. Bases that
 * cannot serve a platform and docker-archive are refused in one line with nothing written; an app
 * whose production packages have native parts refuses platforms other than the host's unless
 * --allow-native.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { exists } from '../src/layer/sources.js';
import { formatPlatform, hostPlatform } from '../src/spec/platform.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../src/spec/types.js';
import { appVariant, editJson, installFixtureApp } from './helpers/apps.js';
import { jsonEvents, lastLine, ocitool } from './helpers/cli.js';
import { startRegistry, skopeoRegistryFlags, type TestRegistry } from './helpers/registry.js';
import { ok, skopeo } from './helpers/tools.js';

const HOST = formatPlatform(hostPlatform());
/** A platform of the base that is not this host's. */
const OTHER = HOST === 'linux/arm64' ? 'linux/amd64' : 'linux/arm64';
const TWO = 'linux/amd64,linux/arm64';

let work: string;
let app: string;
/** The base layout: tags amd, arm, armv7 (one image each) and multi (their index). */
let base: string;
let reg: TestRegistry;

beforeAll(async () => {
  work = join(tmpdir(), `ocitool-platform-${randomBytes(6).toString('hex')}`);
  app = join(work, 'app');
  process.env.OCITOOL_CACHE_DIR = join(work, 'cache');
  await installFixtureApp(app);
  base = join(work, 'base');
  for (const [tag, platform] of [['amd', 'linux/amd64'], ['arm', 'linux/arm64'], ['armv7', 'linux/arm/v7']] as const) {
    const tree = join(work, `tree-${tag}`);
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc/platform'), `${platform}\n`);
    await ok(ocitool(['build', '-q', '--platform', platform, '--add', `${tree}:/`, '--env', `BASE=${tag}`, '--tag', `oci:${base}:${tag}`]));
  }
  await ok(ocitool(['index', 'create', '-q', '--tag', `oci:${base}:multi`, `oci:${base}:amd`, `oci:${base}:arm`, `oci:${base}:armv7`]));
  reg = await startRegistry();
}, 120_000);
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

async function json<T>(l: OciLayout, d: Descriptor): Promise<T> {
  return JSON.parse((await l.fetchBytes(d)).toString()) as T;
}

/** The base's image for a tag of the base layout (amd, arm, armv7): its layer digests. */
async function baseLayers(tag: string): Promise<string[]> {
  const l = await OciLayout.open(base);
  return (await json<ImageManifest>(l, await l.resolve(tag))).layers.map((d) => d.digest);
}

interface Built {
  index: ImageIndex;
  images: { platform: string; manifest: ImageManifest; config: ImageConfig }[];
}

/** The index at `tag` in a layout, and each of its images. */
async function readIndex(dir: string, tag: string): Promise<Built> {
  const l = await OciLayout.open(dir);
  const index = await json<ImageIndex>(l, await l.resolve(tag));
  const images = [];
  for (const e of index.manifests) {
    const manifest = await json<ImageManifest>(l, e);
    images.push({ platform: formatPlatform(e.platform!), manifest, config: await json<ImageConfig>(l, manifest.config) });
  }
  return { index, images };
}

/**
 * An index of the amd64 and arm64 images, each on its base's layers then `added` new layers whose
 * digests are the same in both; configs carry their platform.
 */
async function expectShared(b: Built, added: number, onBase = true): Promise<string[]> {
  expect(b.images.map((i) => i.platform)).toEqual(['linux/amd64', 'linux/arm64']);
  const [amd, arm] = b.images as [Built['images'][number], Built['images'][number]];
  const amdBase = onBase ? await baseLayers('amd') : [];
  const armBase = onBase ? await baseLayers('arm') : [];
  expect(amd.manifest.layers.slice(0, amdBase.length).map((d) => d.digest)).toEqual(amdBase);
  expect(arm.manifest.layers.slice(0, armBase.length).map((d) => d.digest)).toEqual(armBase);
  const shared = amd.manifest.layers.slice(amdBase.length).map((d) => d.digest);
  expect(shared).toHaveLength(added);
  expect(arm.manifest.layers.slice(armBase.length).map((d) => d.digest)).toEqual(shared);
  expect([amd.config.os, amd.config.architecture, arm.config.os, arm.config.architecture]).toEqual(['linux', 'amd64', 'linux', 'arm64']);
  expect(amd.config.rootfs.diff_ids.slice(amdBase.length)).toEqual(arm.config.rootfs.diff_ids.slice(armBase.length));
  return shared;
}

/** The tags (ref names) of a layout's index.json. */
async function layoutTags(dir: string): Promise<Descriptor[]> {
  return (await (await OciLayout.open(dir)).readIndex()).manifests;
}

/** A copy of the installed app, changed by `edit`. */
const variant = (name: string, edit?: (dir: string) => Promise<void>): Promise<string> => appVariant(app, join(work, name), edit);

/** Nothing at `dir`, a new layout's folder: the layout a refused build opened is removed again. */
async function expectNothingWritten(dir: string): Promise<void> {
  expect(await exists(dir), `${dir} left behind`).toBe(false);
}

/** A build that must fail: exit code, one stderr line holding `text`, nothing written, within 10 s. */
async function expectRefused(args: string[], code: number, text: string, to = `oci:${join(work, `refused-${randomBytes(4).toString('hex')}`)}:x`): Promise<void> {
  const started = Date.now();
  const r = await ocitool(['build', ...args, '--tag', to]);
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toContain(text);
  if (to.startsWith('oci:')) await expectNothingWritten(to.slice(4, to.lastIndexOf(':')));
  expect(Date.now() - started).toBeLessThan(10_000);
}

describe('build --platform A,B', () => {
  it('--app into a layout: one index, an image per platform on its base layers, the app and dependency layers made once and shared; skopeo reads and copies it', async () => {
    const out = join(work, 'app-layout');
    const r = await ocitool(['build', '--json', '--app', app, '--from', `oci:${base}:multi`, '--platform', TWO, '--tag', `oci:${out}:v1`]);
    expect(r.code, r.stderr).toBe(0);
    // Two layers made (dependencies, app), not four: every image shares them.
    expect(jsonEvents(r.stdout, 'layer')).toHaveLength(2);
    const b = await readIndex(out, 'v1');
    expect(b.index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(b.index.manifests.map((e) => e.platform)).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
    await expectShared(b, 2);
    expect(b.images.map((i) => i.config.config?.Env)).toEqual([expect.arrayContaining(['BASE=amd', 'NODE_ENV=production']), expect.arrayContaining(['BASE=arm', 'NODE_ENV=production'])]);
    // Only the index is tagged; the images are reachable from it alone. The other entries are the
    // SBOM (the same packages serve every platform), a referrer of the index and of each image:
    // scanners look up the referrers of the image they pull.
    const tags = await layoutTags(out);
    expect(tags.map((d) => [d.mediaType, d.annotations?.['org.opencontainers.image.ref.name']])).toEqual([
      ['application/vnd.oci.image.index.v1+json', 'v1'],
      ...Array.from({ length: 3 }, () => ['application/vnd.oci.image.manifest.v1+json', undefined]),
    ]);
    const sboms = await Promise.all(tags.slice(1).map(async (d) => JSON.parse((await (await OciLayout.open(out)).fetchBytes(d)).toString()) as ImageManifest & { artifactType?: string; subject?: Descriptor }));
    expect(sboms.map((m) => [m.artifactType, m.subject?.digest])).toEqual([tags[0]!.digest, ...b.index.manifests.map((e) => e.digest)].map((d) => ['application/spdx+json', d]));
    expect(new Set(sboms.map((m) => m.layers[0]!.digest)).size).toBe(1);
    for (const e of b.index.manifests) {
      const found = jsonEvents<{ artifactType?: string }>(await ok(ocitool(['referrers', '--json', `oci:${out}@${e.digest}`])), 'referrer');
      expect(found.map((f) => f.artifactType)).toEqual(['application/spdx+json']);
    }

    const raw = JSON.parse(await ok(skopeo(['inspect', '--raw', `oci:${out}:v1`]))) as ImageIndex;
    expect(raw.manifests.map((m) => m.digest)).toEqual(b.index.manifests.map((m) => m.digest));
    const arm = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', `oci:${out}:v1`]))) as { Architecture: string; Layers: string[] };
    expect([arm.Architecture, arm.Layers]).toEqual(['arm64', b.images[1]!.manifest.layers.map((d) => d.digest)]);
    const copied = join(work, 'app-layout-copy');
    await ok(skopeo(['copy', '--all', '--preserve-digests', `oci:${out}:v1`, `oci:${copied}:v1`]));
    expect((await readIndex(copied, 'v1')).index).toEqual(b.index);
  }, 90_000);

  it('--app into the real registry from a base there, OCI and --format docker (a manifest list); skopeo inspects and copies it', async () => {
    await ok(skopeo(['copy', '--all', ...skopeoRegistryFlags(reg, 'dest'), `oci:${base}:multi`, `docker://${reg.host}/base/multi:v1`]));
    for (const format of ['oci', 'docker'] as const) {
      const ref = `docker://${reg.host}/apps/hello:${format}`;
      const r = await ocitool(['build', '-q', '--app', app, '--from', `docker://${reg.host}/base/multi:v1`, '--platform', TWO, '--format', format, '--tag', ref]);
      expect(r.code, r.stderr).toBe(0);
      const rawText = await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), ref]));
      // What the build printed is the digest of what the registry holds under the tag: the index.
      expect(lastLine(r.stdout)).toBe(`sha256:${createHash('sha256').update(rawText.trimEnd()).digest('hex')}`);
      const raw = JSON.parse(rawText) as ImageIndex;
      expect(raw.mediaType).toBe(format === 'oci' ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.docker.distribution.manifest.list.v2+json');
      expect(raw.manifests.map((m) => [m.mediaType, m.platform?.architecture])).toEqual(
        ['amd64', 'arm64'].map((a) => [format === 'oci' ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json', a]),
      );
      const arm = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', ...skopeoRegistryFlags(reg, 'plain'), ref]))) as { Architecture: string; Env: string[] };
      expect([arm.Architecture, arm.Env.includes('BASE=arm')]).toEqual(['arm64', true]);
      // Each image, as the registry serves it by digest.
      const at = (digest: string): string => `${ref.slice(0, ref.lastIndexOf(':'))}@${digest}`;
      const images: Built['images'] = [];
      for (const e of raw.manifests) {
        const manifest = JSON.parse(await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), at(e.digest)]))) as ImageManifest;
        const config = JSON.parse(await ok(skopeo(['inspect', '--raw', '--config', ...skopeoRegistryFlags(reg, 'plain'), at(e.digest)]))) as ImageConfig;
        images.push({ platform: formatPlatform(e.platform!), manifest, config });
      }
      await expectShared({ index: raw, images }, 2);
      if (format === 'oci') {
        const copied = join(work, 'from-registry');
        await ok(skopeo(['copy', '--all', '--preserve-digests', ...skopeoRegistryFlags(reg, 'src'), ref, `oci:${copied}:v1`]));
        expect((await readIndex(copied, 'v1')).index).toEqual(raw);
      }
    }
  }, 120_000);

  it('package.json "ocitool".platform as a list or a comma string, on scratch', async () => {
    for (const [name, platform] of [['list', ['linux/amd64', 'linux/arm64']], ['comma', TWO]] as const) {
      const out = join(work, `pj-${name}-out`);
      const dir = await variant(`pj-${name}`, (d) => editJson(join(d, 'package.json'), (j) => Object.assign(j.ocitool as object, { platform, tag: `oci:${out}:v1` })));
      const r = await ocitool(['build', '-q', '--app', dir]);
      expect(r.code, r.stderr).toBe(0);
      await expectShared(await readIndex(out, 'v1'), 2, false);
    }
  }, 90_000);

  it('without --app: --add layers shared by the images, variants recorded; a single platform stays a manifest', async () => {
    const extra = join(work, 'extra');
    await mkdir(extra);
    await writeFile(join(extra, 'note.txt'), 'shared\n');
    const out = join(work, 'plain');
    const source = 'org.opencontainers.image.source=https://example.com/app';
    const r = await ocitool(['build', '--json', '--from', `oci:${base}:multi`, '--platform', `${TWO},linux/arm/v7`, '--add', `${extra}:/opt`, '--annotation', source, '--tag', `oci:${out}:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonEvents(r.stdout, 'layer')).toHaveLength(1);
    const b = await readIndex(out, 'v1');
    // --annotation: on the index (what registries show of a multi-platform image) and on each image.
    expect(b.index.annotations).toEqual({ 'org.opencontainers.image.source': 'https://example.com/app' });
    for (const i of b.images) expect(i.manifest.annotations?.['org.opencontainers.image.source']).toBe('https://example.com/app');
    expect(b.index.manifests.map((e) => e.platform)).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm', variant: 'v7' }]);
    const v7 = b.images[2]!;
    expect([v7.config.architecture, v7.config.variant]).toEqual(['arm', 'v7']);
    expect(v7.manifest.layers.map((d) => d.digest)).toEqual([...(await baseLayers('armv7')), b.images[0]!.manifest.layers.at(-1)!.digest]);
    await expectShared({ index: b.index, images: b.images.slice(0, 2) }, 1);

    const scratch = join(work, 'plain-scratch');
    await ok(ocitool(['build', '-q', '--platform', TWO, '--add', `${extra}:/opt`, '--tag', `oci:${scratch}:v1`]));
    await expectShared(await readIndex(scratch, 'v1'), 1, false);

    const single = join(work, 'plain-single');
    await ok(ocitool(['build', '-q', '--from', `oci:${base}:multi`, '--platform', 'linux/arm64', '--add', `${extra}:/opt`, '--tag', `oci:${single}:v1`]));
    const [tag] = await layoutTags(single);
    expect([tag!.mediaType, tag!.platform]).toEqual(['application/vnd.oci.image.manifest.v1+json', { os: 'linux', architecture: 'arm64' }]);
  }, 90_000);

  it("a platform asked without a variant records the variant of the base image it matched (linux/arm on an arm/v6 base is linux/arm/v6), in the index and the config", async () => {
    const tree = join(work, 'tree-v6');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc/platform'), 'linux/arm/v6\n');
    const v6 = join(work, 'base-v6');
    await ok(ocitool(['build', '-q', '--platform', 'linux/arm/v6', '--add', `${tree}:/`, '--tag', `oci:${v6}:v6`]));
    await ok(ocitool(['index', 'create', '-q', '--tag', `oci:${v6}:multi`, `oci:${base}:amd`, `oci:${v6}:v6`]));
    const out = join(work, 'v6-out');
    await ok(ocitool(['build', '-q', '--from', `oci:${v6}:multi`, '--platform', 'linux/amd64,linux/arm', '--tag', `oci:${out}:v1`]));
    const b = await readIndex(out, 'v1');
    expect(b.index.manifests.map((e) => e.platform)).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm', variant: 'v6' }]);
    expect([b.images[1]!.config.architecture, b.images[1]!.config.variant]).toEqual(['arm', 'v6']);
    // One platform: the tag's platform and the config say v6 too.
    const single = join(work, 'v6-single');
    await ok(ocitool(['build', '-q', '--from', `oci:${v6}:multi`, '--platform', 'linux/arm', '--tag', `oci:${single}:v1`]));
    expect((await layoutTags(single))[0]!.platform).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
  }, 60_000);

  it('refuses in one line, with nothing written: a platform the base lacks, a single-platform base for two, docker-archive for two, a platform twice', async () => {
    await expectRefused(['--app', app, '--from', `oci:${base}:multi`, '--platform', 'linux/amd64,linux/s390x'], 1, `base oci:${base}:multi: no image for platform linux/s390x (index has: linux/amd64, linux/arm64, linux/arm/v7)`);
    await expectRefused(['--app', app, '--from', `oci:${base}:amd`, '--platform', TWO], 2, `base oci:${base}:amd is a single-platform image (linux/amd64), not an index: it cannot serve linux/amd64, linux/arm64`);
    const archive = join(work, 'two.tar');
    await expectRefused(['--app', app, '--platform', TWO], 2, `docker-archive:${archive} cannot hold an image index (linux/amd64, linux/arm64)`, `docker-archive:${archive}:hello:v1`);
    expect(await exists(archive)).toBe(false);
    await expectRefused(['--app', app, '--platform', 'linux/amd64,linux/amd64'], 2, '--platform linux/amd64,linux/amd64: linux/amd64 is listed twice');
  }, 60_000);

  it('a refused build into a new layout leaves no folder (nor the parents made for it), an empty folder empty; into an existing layout, nothing is changed', async () => {
    const parent = join(work, `new-${randomBytes(4).toString('hex')}`);
    await expectRefused(['--app', app, '--from', `oci:${base}:amd`, '--platform', TWO], 2, 'is a single-platform image', `oci:${join(parent, 'deep', 'layout')}:x`);
    expect(await exists(parent)).toBe(false);
    // An empty folder made beforehand stays, empty.
    const empty = join(work, `empty-${randomBytes(4).toString('hex')}`);
    await mkdir(empty);
    const r0 = await ocitool(['build', '--app', app, '--from', `oci:${base}:amd`, '--platform', TWO, '--tag', `oci:${empty}:x`]);
    expect(r0.code).toBe(2);
    expect(await readdir(empty)).toEqual([]);
    // An existing layout, with a tag: refused, it is the same afterwards.
    const kept = join(work, 'kept-layout');
    await ok(ocitool(['build', '-q', '--platform', 'linux/amd64', '--tag', `oci:${kept}:old`]));
    const before = await readFile(join(kept, 'index.json'));
    const blobs = (await readdir(join(kept, 'blobs/sha256'))).sort();
    const r = await ocitool(['build', '--app', app, '--from', `oci:${base}:amd`, '--platform', TWO, '--tag', `oci:${kept}:new`]);
    expect(r.code).toBe(2);
    expect((await readFile(join(kept, 'index.json'))).equals(before)).toBe(true);
    expect((await readdir(join(kept, 'blobs/sha256'))).sort()).toEqual(blobs);
  }, 60_000);
});

describe('build --app: native dependencies', () => {
  it('a .node file or binding.gyp in a production package refuses a platform other than the host\'s, unless --allow-native', async () => {
    const addon = await variant('native-addon', async (d) => {
      const at = join(d, 'node_modules/debug/node_modules/ms/build/Release');
      await mkdir(at, { recursive: true });
      await writeFile(join(at, 'ms.node'), randomBytes(64));
    });
    const other = OTHER;
    await expectRefused(['--app', addon, '--platform', `${HOST},${other}`], 2, `--app ${addon}: ms@2.0.0 (node_modules/debug/node_modules/ms) has native parts that cannot serve ${other}: it holds build/Release/ms.node, built for this host (${HOST})`);
    await expectRefused(['--app', addon, '--from', `oci:${base}:multi`, '--platform', other], 2, `ms@2.0.0 (node_modules/debug/node_modules/ms) has native parts that cannot serve ${other}`);
    const gyp = await variant('native-gyp', (d) => writeFile(join(d, 'node_modules/express/binding.gyp'), '{}'));
    await expectRefused(['--app', gyp, '--platform', other], 2, `express@4.21.2 (node_modules/express) has native parts that cannot serve ${other}: it holds binding.gyp`);

    const allowed = join(work, 'native-allowed');
    await ok(ocitool(['build', '-q', '--app', addon, '--platform', `${HOST},${other}`, '--allow-native', '--tag', `oci:${allowed}:v1`]));
    expect((await readIndex(allowed, 'v1')).images.map((i) => i.platform)).toEqual([HOST, other]);
    const hostOnly = join(work, 'native-host');
    await ok(ocitool(['build', '-q', '--app', addon, '--from', `oci:${base}:multi`, '--platform', HOST, '--tag', `oci:${hostOnly}:v1`]));
    expect((await layoutTags(hostOnly))[0]!.platform).toEqual(hostPlatform());
    // "ocitool": {"allowNative": true} in package.json does what the flag does.
    const pjAllowed = join(work, 'native-pj');
    await editJson(join(addon, 'package.json'), (j) => Object.assign(j.ocitool as object, { allowNative: true }));
    await ok(ocitool(['build', '-q', '--app', addon, '--platform', other, '--tag', `oci:${pjAllowed}:v1`]));
  }, 90_000);

  it('the refusal comes before the base is read: a base whose image for that platform is damaged is not reached', async () => {
    const addon = await variant('native-early', async (d) => {
      await mkdir(join(d, 'node_modules/ms/build'), { recursive: true });
      await writeFile(join(d, 'node_modules/ms/build/ms.node'), randomBytes(16));
    });
    const damaged = join(work, 'base-damaged');
    await ok(skopeo(['copy', '--all', '--preserve-digests', `oci:${base}:multi`, `oci:${damaged}:multi`]));
    const other = (await readIndex(damaged, 'multi')).images.find((i) => i.platform === OTHER)!;
    await rm(join(damaged, 'blobs/sha256', other.manifest.config.digest.slice('sha256:'.length)));
    await expectRefused(['--app', addon, '--from', `oci:${damaged}:multi`, '--platform', `${HOST},${OTHER}`], 2, `ms@2.1.3 (node_modules/ms) has native parts that cannot serve ${OTHER}`);
  }, 60_000);

  it('a lockfile cpu field that excludes a platform refuses it, unless --allow-native; the host platform alone is accepted', async () => {
    const hostCpu = process.arch;
    const pinned = await variant('native-cpu', (d) =>
      editJson(join(d, 'package-lock.json'), (j) => ((j.packages as Record<string, Record<string, unknown>>)['node_modules/ms']!.cpu = [hostCpu])),
    );
    await expectRefused(['--app', pinned, '--from', `oci:${base}:multi`, '--platform', TWO], 2, `ms@2.1.3 (node_modules/ms) has native parts that cannot serve ${OTHER}: its lockfile "cpu" field ["${hostCpu}"] excludes ${OTHER === 'linux/arm64' ? 'arm64' : 'x64'}`);
    const allowed = join(work, 'cpu-allowed');
    await ok(ocitool(['build', '-q', '--app', pinned, '--from', `oci:${base}:multi`, '--platform', TWO, '--allow-native', '--tag', `oci:${allowed}:v1`]));
    await expectShared(await readIndex(allowed, 'v1'), 2);
    const hostOnly = join(work, 'cpu-host');
    await ok(ocitool(['build', '-q', '--app', pinned, '--platform', HOST, '--tag', `oci:${hostOnly}:v1`]));
    // A cpu list that admits every platform asked for is no obstacle.
    const both = await variant('native-cpu-both', (d) =>
      editJson(join(d, 'package-lock.json'), (j) => ((j.packages as Record<string, Record<string, unknown>>)['node_modules/ms']!.cpu = ['x64', 'arm64'])),
    );
    await ok(ocitool(['build', '-q', '--app', both, '--platform', TWO, '--tag', `oci:${join(work, 'cpu-both')}:v1`]));
  }, 90_000);
});
