import { cp, mkdtemp, rm, writeFile, readFile, unlink, truncate, readdir, utimes, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeTestImage } from '../../test/helpers/images.js';
import { OciLayout } from '../layout/layout.js';
import { verifyLayout } from '../layout/verify.js';
import { MediaType } from '../spec/media-types.js';
import { gc } from './gc.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-verify-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function flipByte(path: string): Promise<void> {
  const b = await readFile(path);
  const i = Math.floor(b.length / 2);
  b[i] = b[i]! ^ 0x01;
  await writeFile(path, b);
}

describe('verify', () => {
  it('passes on a sound layout and reports unreferenced blobs', async () => {
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1' });
    const stray = await l.putBytes('stray', 'text/plain');
    const r = await verifyLayout(l, { diffIds: true });
    expect(r.problems).toEqual([]);
    expect(r.checked).toBe(4);
    expect(r.unreferenced).toEqual([stray.digest]);
    expect(img.layers).toHaveLength(2);
  });

  it.each(['manifest', 'config', 'layer'] as const)('names the blob when a byte of the %s is flipped', async (which) => {
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1' });
    const target = which === 'manifest' ? img.manifest : which === 'config' ? img.config : img.layers[1]!;
    await flipByte(l.blobPath(target.digest));
    const r = await verifyLayout(l);
    expect(r.problems.map((p) => p.digest)).toContain(target.digest);
    expect(r.problems.map((p) => p.message).join('\n')).toMatch(new RegExp(`${target.digest}.*hashes to`));
  });

  it('reports a missing blob and a wrong size', async () => {
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1' });
    await unlink(l.blobPath(img.layers[0]!.digest));
    await truncate(l.blobPath(img.layers[1]!.digest), 3);
    const r = await verifyLayout(l);
    const text = r.problems.map((p) => p.message).join('\n');
    expect(text).toContain(`blob ${img.layers[0]!.digest} not found`);
    expect(text).toMatch(new RegExp(`${img.layers[1]!.digest}.*got 3 bytes`));
  });

  it('checks diff_ids against layer count and content', async () => {
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1', layers: 1 });
    const other = await writeTestImage(l, { seed: 'other', layers: 1 });
    // A manifest whose layer is another image's layer: the count is right, the diff_id is not.
    const bad = await l.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: img.config, layers: other.layers }), MediaType.OciManifest);
    await l.tag(bad, 'bad');
    expect((await verifyLayout(l)).problems).toEqual([]);
    const deep = await verifyLayout(l, { diffIds: true });
    expect(deep.problems.map((p) => p.message).join('\n')).toMatch(/decompresses to sha256:.*but config .* says diff_id/);
    const wrongCount = await l.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: img.config, layers: [...img.layers, ...other.layers] }), MediaType.OciManifest);
    await l.tag(wrongCount, 'count');
    expect((await verifyLayout(l)).problems.map((p) => p.message).join('\n')).toMatch(/has 2 layers but its config .* lists 1 diff_ids/);
  });

  it('reports a document whose media type disagrees with its descriptor, and badly named blob files', async () => {
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l);
    await l.tag({ ...img.manifest, mediaType: MediaType.DockerManifest }, 'liar');
    await writeFile(join(dir, 'blobs', 'sha256', 'not-a-digest'), 'x');
    const text = (await verifyLayout(l)).problems.map((p) => p.message).join('\n');
    expect(text).toContain(`referenced as ${MediaType.DockerManifest} but says it is ${MediaType.OciManifest}`);
    expect(text).toContain('blobs/sha256/not-a-digest is not a blob named by a valid digest');
  });

  it('reads layouts written by go-containerregistry', async () => {
    for (const name of ['test_index_one_image', 'test_index_media_type', 'test_gc_index']) {
      const l = await OciLayout.open(join('testdata/ggcr-layouts', name));
      const r = await verifyLayout(l);
      expect(r.problems.filter((p) => !/referenced as/.test(p.message))).toEqual([]);
    }
  });
});

describe('gc', () => {
  it('removes unreferenced blobs and stale temp files, keeps everything reachable', async () => {
    const l = await OciLayout.init(dir);
    const keep = await writeTestImage(l, { tag: 'keep', seed: 'keep' });
    const drop = await writeTestImage(l, { tag: 'drop', seed: 'drop' });
    await l.untag('drop');
    await mkdir(join(dir, '.ocitool', 'tmp'), { recursive: true });
    const stale = join(dir, '.ocitool', 'tmp', 'blob-999999-0123456789ab');
    await writeFile(stale, 'half a blob');
    const live = join(dir, '.ocitool', 'tmp', `blob-${process.pid}-0123456789ab`);
    await writeFile(live, 'being written');
    await utimes(live, new Date(), new Date());

    const dry = await gc(l, { dryRun: true });
    expect(dry.removed).toHaveLength(4);
    expect((await verifyLayout(l)).unreferenced).toHaveLength(4);

    const r = await gc(l);
    expect(r.removed.map((b) => b.digest).sort()).toEqual([drop.manifest, drop.config, ...drop.layers].map((d) => d.digest).sort());
    expect(r.tempFilesRemoved).toBe(1);
    expect(await readdir(join(dir, '.ocitool', 'tmp'))).toEqual([`blob-${process.pid}-0123456789ab`]);
    const after = await verifyLayout(l, { diffIds: true });
    expect(after.problems).toEqual([]);
    expect(after.unreferenced).toEqual([]);
    expect(after.checked).toBe(2 + keep.layers.length);
  });

  it('aborts without removing anything when a reachable manifest is unreadable', async () => {
    await cp('testdata/ggcr-layouts/test_index_one_image', dir, { recursive: true });
    const l = await OciLayout.open(dir);
    const stray = await l.putBytes('stray', 'text/plain');
    const [root] = await l.roots();
    await flipByte(l.blobPath(root!.digest));
    await expect(gc(l)).rejects.toThrow(/gc of oci:.* aborted, nothing removed/);
    expect(await l.stat(stray.digest)).toBe(5);
  });
});
