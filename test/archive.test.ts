/**
 * Archives (issue 5): docker-archive and oci-archive written by ocitool are read by skopeo, and ones
 * skopeo (or docker) wrote are read by ocitool, with the same diff_ids and digests; damaged archives
 * fail cleanly and leave nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../src/spec/types.js';
import { lastLine, ocitool, jsonEvents } from './helpers/cli.js';
import { tarOf } from './helpers/images.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let built: string;
let diffIds: string[];
let original: string;

async function imageIn(dir: string, tag: string): Promise<{ manifest: ImageManifest; config: ImageConfig; digest: string }> {
  const layout = await OciLayout.open(dir);
  const desc = await layout.resolve(tag);
  const manifest = JSON.parse((await layout.fetchBytes(desc)).toString()) as ImageManifest;
  return { manifest, config: JSON.parse((await layout.fetchBytes(manifest.config)).toString()) as ImageConfig, digest: desc.digest };
}

const tagsIn = async (dir: string): Promise<string[]> =>
  existsSync(join(dir, 'index.json')) ? (JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] }).manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '') : [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-archive-'));
  built = join(work, 'built');
  const layout = await OciLayout.init(built);
  const layers: Descriptor[] = [];
  diffIds = [];
  for (let i = 0; i < 3; i++) {
    // Incompressible-ish content so that a truncated archive cuts a layer, not just the tail.
    const tar = await tarOf({ [`data-${i}.txt`]: Array.from({ length: 4000 }, (_, j) => `${i}:${j}:${(j * 7919) % 10007}`).join('\n') });
    diffIds.push(digestOf(tar));
    layers.push(await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip));
  }
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', created: '2021-01-01T00:00:00Z', config: { Cmd: ['/bin/true'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: diffIds.map(() => ({ created: '2021-01-01T00:00:00Z' })) };
  const cfg = await layout.putBytes(JSON.stringify(config), MediaType.OciConfig);
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers };
  const root = await layout.putBytes(JSON.stringify(m), MediaType.OciManifest);
  await layout.tag(root, 'v1');
  original = root.digest;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('docker-archive', () => {
  it('written by ocitool, read by skopeo with the same diff_ids; tagged NAME:TAG in manifest.json', async () => {
    const file = join(work, 'ours.tar');
    await ok(ocitool(['copy', `oci:${built}:v1`, `docker-archive:${file}:example.com/team/app:v1`]));
    const tarList = execFileSync('tar', ['tf', file]).toString().trim().split('\n');
    expect(tarList.filter((n) => n.endsWith('.tar')).sort()).toEqual(diffIds.map((d) => `${d.slice(7)}.tar`).sort());
    const items = JSON.parse(execFileSync('tar', ['xOf', file, 'manifest.json']).toString()) as { RepoTags: string[]; Layers: string[] }[];
    expect(items).toHaveLength(1);
    expect(items[0]!.RepoTags).toEqual(['example.com/team/app:v1']);
    expect(items[0]!.Layers).toEqual(diffIds.map((d) => `${d.slice(7)}.tar`));
    const out = join(work, 'skopeo-read');
    await ok(skopeo(['copy', `docker-archive:${file}`, `oci:${out}:x`]));
    expect((await imageIn(out, 'x')).config.rootfs.diff_ids).toEqual(diffIds);
    // And a familiar name, as docker save writes it.
    const file2 = join(work, 'familiar.tar');
    await ok(ocitool(['copy', `oci:${built}:v1`, `docker-archive:${file2}:docker.io/library/app`]));
    expect((JSON.parse(execFileSync('tar', ['xOf', file2, 'manifest.json']).toString()) as { RepoTags: string[] }[])[0]!.RepoTags).toEqual(['app:latest']);
  });

  it('written by skopeo (legacy shape with symlinked layer.tar), read by ocitool: by name or alone; gzip OCI layers by default', async () => {
    const file = join(work, 'skopeo.tar');
    await ok(skopeo(['copy', `oci:${built}:v1`, `docker-archive:${file}:app:v1`]));
    const out = join(work, 'read');
    await ok(ocitool(['copy', `docker-archive:${file}`, `oci:${out}:alone`]));
    await ok(ocitool(['copy', `docker-archive:${file}:app:v1`, `oci:${out}:named`]));
    for (const tag of ['alone', 'named']) {
      const img = await imageIn(out, tag);
      expect(img.config.rootfs.diff_ids).toEqual(diffIds);
      // Into a layout a docker-archive always comes as OCI (it has no manifest digest to keep).
      expect(img.manifest.mediaType).toBe(MediaType.OciManifest);
      expect(new Set(img.manifest.layers.map((l) => l.mediaType))).toEqual(new Set([MediaType.OciLayerGzip]));
    }
    await ok(ocitool(['verify', '--diff-ids', out]));
    const missing = await ocitool(['copy', `docker-archive:${file}:other:v9`, `oci:${out}:nope`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no image tagged docker\.io\/library\/other:v9 \(tags: .*app:v1\)/);
    // --compression none keeps the plain tars: each layer's digest is its diffID.
    await ok(ocitool(['copy', '--compression', 'none', `docker-archive:${file}`, `oci:${out}:plain`]));
    expect((await imageIn(out, 'plain')).manifest.layers.map((l) => l.digest)).toEqual(diffIds);
  });

  it('reads a gzipped docker save and the containers/image sample', async () => {
    const plain = join(work, 'skopeo.tar');
    const gz = join(work, 'skopeo.tar.gz');
    await pipeline(createReadStream(plain), createGzip(), createWriteStream(gz));
    const out = join(work, 'from-gz');
    await ok(ocitool(['copy', `docker-archive:${gz}`, `oci:${out}:g`]));
    expect((await imageIn(out, 'g')).config.rootfs.diff_ids).toEqual(diffIds);
    const sample = join(import.meta.dirname, '../testdata/docker-archive/almostempty.tar');
    await ok(ocitool(['copy', `docker-archive:${sample}:emptyimage:latest`, `oci:${out}:sample`]));
    await ok(ocitool(['verify', '--diff-ids', out]));
  });

  it('a truncated archive fails with one clear line and leaves no tag behind', async () => {
    const file = join(work, 'cut.tar');
    await copyFile(join(work, 'skopeo.tar'), file);
    await truncate(file, Math.floor((await stat(file)).size / 2));
    const out = join(work, 'from-cut');
    const res = await ocitool(['copy', `docker-archive:${file}`, `oci:${out}:cut`]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/cut\.tar: truncated/);
    expect(await tagsIn(out)).not.toContain('cut');
  });

  it('a copy that fails leaves no archive and no temp file', async () => {
    const broken = join(work, 'broken');
    await ok(ocitool(['copy', `oci:${built}:v1`, `oci:${broken}:v1`]));
    const m = (await imageIn(broken, 'v1')).manifest;
    const blob = join(broken, 'blobs', 'sha256', m.layers[1]!.digest.slice(7));
    const bytes = await readFile(blob);
    bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
    await rm(blob);
    await writeFile(blob, bytes);
    const dir = join(work, 'dest');
    await mkdir(dir);
    const res = await ocitool(['copy', '--json', `oci:${broken}:v1`, `docker-archive:${join(dir, 'out.tar')}:x:y`]);
    // The first failure stops the other transfers: none is retried.
    expect(res.stdout).not.toMatch(/blob-retry/);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(m.layers[1]!.digest));
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('oci-archive', () => {
  it('written by ocitool, read by skopeo with the same digest; and the other way round', async () => {
    const file = join(work, 'ours-oci.tar');
    const res = await ok(ocitool(['copy', `oci:${built}:v1`, `oci-archive:${file}:v1`]));
    expect(lastLine(res)).toBe(original);
    const seen = JSON.parse(await ok(skopeo(['inspect', `oci-archive:${file}:v1`]))) as { Digest: string };
    expect(seen.Digest).toBe(original);
    const theirs = join(work, 'skopeo-oci.tar');
    await ok(skopeo(['copy', `oci:${built}:v1`, `oci-archive:${theirs}:t`]));
    const out = join(work, 'from-oci-archive');
    expect(lastLine(await ok(ocitool(['copy', `oci-archive:${theirs}:t`, `oci:${out}:t`])))).toBe(original);
    expect(lastLine(await ok(ocitool(['copy', `oci-archive:${theirs}`, `oci:${out}:alone`])))).toBe(original);
    await ok(ocitool(['verify', '--diff-ids', out]));
  });

  it('a truncated oci-archive fails cleanly, leaving no tag', async () => {
    const file = join(work, 'cut-oci.tar');
    await copyFile(join(work, 'skopeo-oci.tar'), file);
    await truncate(file, Math.floor((await stat(file)).size * 0.6));
    const out = join(work, 'from-cut-oci');
    const res = await ocitool(['copy', `oci-archive:${file}:t`, `oci:${out}:t`]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/cut-oci\.tar: truncated|cut-oci\.tar.*(no index\.json|not found)/);
    expect(await tagsIn(out)).not.toContain('t');
  });
});

describe('docker-archive in the Docker 25 shape (an OCI layout inside)', () => {
  it('reads manifest.json with blobs/sha256 paths, and a layout without manifest.json', async () => {
    const layoutTar = join(work, 'ours-oci.tar');
    const dir = join(work, 'docker25');
    await mkdir(dir);
    execFileSync('tar', ['xf', layoutTar, '-C', dir]);
    const img = await imageIn(built, 'v1');
    const item = { Config: `blobs/sha256/${img.manifest.config.digest.slice(7)}`, RepoTags: ['app:25'], Layers: img.manifest.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) };
    await writeFile(join(dir, 'manifest.json'), JSON.stringify([item]));
    const withManifest = join(work, 'docker25.tar');
    execFileSync('tar', ['cf', withManifest, '-C', dir, '.']);
    const out = join(work, 'from-docker25');
    await ok(ocitool(['copy', `docker-archive:${withManifest}:app:25`, `oci:${out}:a`]));
    const a = await imageIn(out, 'a');
    // Named by digest in the archive: the gzip layers are taken as they are.
    expect(a.manifest.layers.map((l) => l.digest)).toEqual(img.manifest.layers.map((l) => l.digest));
    expect(a.config.rootfs.diff_ids).toEqual(diffIds);
    // The same tar without manifest.json: read as the layout it holds.
    expect(lastLine(await ok(ocitool(['copy', `docker-archive:${layoutTar}`, `oci:${out}:b`])))).toBe(original);
    await ok(ocitool(['verify', '--diff-ids', out]));
  });
});

describe('archives from build, and listed', () => {
  it('build --tag writes docker-archive and oci-archive directly; ls lists what they hold', async () => {
    const src = join(work, 'tree');
    await mkdir(join(src, 'etc'), { recursive: true });
    await writeFile(join(src, 'etc', 'hello'), 'hello\n');
    const da = join(work, 'built-da.tar');
    const oa = join(work, 'built-oa.tar');
    const d1 = lastLine(await ok(ocitool(['build', '--tag', `docker-archive:${da}:example/app:1`, '--add', `${src}:/`], { env: { ...process.env, SOURCE_DATE_EPOCH: '1600000000' } })));
    const d2 = lastLine(await ok(ocitool(['build', '--tag', `oci-archive:${oa}:1`, '--add', `${src}:/`], { env: { ...process.env, SOURCE_DATE_EPOCH: '1600000000' } })));
    const listed = jsonEvents<{ tag: string; mediaType: string }>(await ok(ocitool(['ls', '--json', `docker-archive:${da}`])), 'image');
    // The docker archive's digest is the one its reader lists (plain tar layers), not the layout's.
    expect(listed).toEqual([expect.objectContaining({ tag: 'example/app:1', mediaType: MediaType.DockerManifest, digest: d1 })]);
    const listedOci = jsonEvents<{ tag: string; digest: string }>(await ok(ocitool(['ls', '--json', `oci-archive:${oa}`])), 'image');
    expect(listedOci).toEqual([expect.objectContaining({ tag: '1', digest: d2 })]);
    // skopeo reads both.
    expect((JSON.parse(await ok(skopeo(['inspect', `oci-archive:${oa}:1`]))) as { Digest: string }).Digest).toBe(d2);
    await ok(skopeo(['inspect', `docker-archive:${da}`]));
  });
});

describe('archive destinations that cannot be written', () => {
  it('fail at once with one line naming the file', async () => {
    for (const t of ['docker-archive', 'oci-archive']) {
      const res = await ocitool(['copy', `oci:${built}:v1`, `${t}:${join(work, 'no-such-dir', 'x.tar')}`]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^ocitool: .*no-such-dir\/x\.tar: cannot write there \(no such directory\)\n$/);
    }
  });
});
