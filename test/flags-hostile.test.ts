/**
 * Flags and documents that used to fail late or raw: every flag is checked before any work (exit 2,
 * one line), and a hostile document is one line naming it, never a stack overflow.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import { ocitool } from './helpers/cli.js';
import { tarOf, writeTestImage } from './helpers/images.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-flags-'));
  src = join(work, 'src');
  await writeTestImage(await OciLayout.init(src), { tag: 'v1' });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const oneLine = (stderr: string): string[] => stderr.trim().split('\n');

describe('flags are checked before any work', () => {
  it('copy --compression gzip --compression-level 15: exit 2, one line with the range, nothing written', async () => {
    const dst = join(work, 'dst-15');
    const r = await ocitool(['copy', '--compression', 'gzip', '--compression-level', '15', `oci:${src}:v1`, `oci:${dst}:v1`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toEqual(['ocitool: copy: --compression-level 15: gzip levels are 0-9']);
    await expect(readdir(dst)).rejects.toThrow(/ENOENT/);
  });

  it('a level without --compression on copy is a usage error; zstd takes 1-19 on copy and build alike', async () => {
    const dst = join(work, 'dst-nolevel');
    const r = await ocitool(['copy', '--compression-level', '5', `oci:${src}:v1`, `oci:${dst}:v1`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--compression-level needs --compression/);
    await expect(readdir(dst)).rejects.toThrow(/ENOENT/);
    const build = await ocitool(['build', '--compression', 'zstd', '--compression-level', '20', '--tag', `oci:${join(work, 'b20')}:x`]);
    expect(build.code).toBe(2);
    expect(oneLine(build.stderr)).toEqual(['ocitool: --compression-level 20: zstd levels are 1-19']);
    const copy = await ocitool(['copy', '--compression', 'zstd', '--compression-level', '20', `oci:${src}:v1`, `oci:${join(work, 'c20')}:v1`]);
    expect(copy.code).toBe(2);
    expect(copy.stderr).toMatch(/zstd levels are 1-19/);
    const repack = await ocitool(['repack', join(work, 'no-rootfs'), '--compression-level', '10', '--tag', `oci:${join(work, 'r')}:x`]);
    expect(repack.code).toBe(2);
    expect(repack.stderr).toMatch(/gzip levels are 0-9/);
  });

  it('build --entrypoint with broken JSON: exit 2, one line naming the flag, no layout made', async () => {
    const out = join(work, 'ep');
    const r = await ocitool(['build', '--entrypoint', '[1,2', '--tag', `oci:${out}:x`]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^ocitool: --entrypoint \[1,2: expected a JSON array of strings/);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
    const nums = await ocitool(['build', '--cmd', '[1,2]', '--tag', `oci:${out}:x`]);
    expect(nums.code).toBe(2);
    expect(nums.stderr).toMatch(/--cmd \[1,2\]: expected a JSON array of strings/);
  });
});

describe('hostile documents', () => {
  it('a manifest nested a million levels deep: inspect and copy say so in one line naming it, exit 1', async () => {
    const dir = join(work, 'deep');
    const layout = await OciLayout.init(dir);
    const base = await writeTestImage(layout);
    const deep = `{"schemaVersion":2,"mediaType":"${MediaType.OciManifest}","config":${JSON.stringify(base.config)},"layers":[],"annotations":{"x":"y"},"z":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    const m = await layout.putBytes(deep, MediaType.OciManifest);
    await layout.tag(m, 'deep');
    for (const args of [['inspect', `oci:${dir}:deep`], ['copy', `oci:${dir}:deep`, `oci:${join(work, 'deep-out')}:x`], ['build', '--from', `oci:${dir}:deep`, '--tag', `oci:${join(work, 'deep-build')}:x`]]) {
      const r = await ocitool(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(oneLine(r.stderr), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`${m.digest.slice(7, 19)}.*JSON nested more than 256 levels deep`));
      expect(r.stderr).not.toMatch(/call stack/);
    }
  });

  it('verify --diff-ids of a layer whose gzip check fails names the layer (not a bare "incorrect data check")', async () => {
    const dir = join(work, 'badcrc');
    const layout = await OciLayout.init(dir);
    const tar = await tarOf({ 'a.txt': 'hello\n' });
    const gz = gzipSync(tar);
    gz[gz.length - 8]! ^= 0xff; // the CRC32 in the trailer
    const layer = await layout.putBytes(gz, MediaType.OciLayerGzip);
    const config = await layout.putBytes(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(tar)] } }), MediaType.OciConfig);
    const m = await layout.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }), MediaType.OciManifest);
    await layout.tag(m, 'v1');
    const r = await ocitool(['verify', '--diff-ids', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`blob ${layer.digest}: not valid gzip data \\(incorrect data check\\)`));
  });
});
