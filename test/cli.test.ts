import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import { ocitool, lastLine, jsonEvents } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Every file under dir with its sha256: to prove a failed command modified nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[relative(dir, p)] = createHash('sha256').update(await readFile(p)).digest('hex');
  }
  return out;
}

describe('ocitool CLI on layouts', () => {
  it('init, tag, ls, inspect, rm', async () => {
    const dir = join(work, 'basic');
    expect((await ocitool(['init', dir])).code).toBe(0);
    const l = await OciLayout.open(dir);
    const img = await writeTestImage(l, { tag: 'v1' });

    const tag = await ocitool(['tag', `oci:${dir}:v1`, 'v2']);
    expect(tag.code).toBe(0);
    expect(lastLine(tag.stdout)).toBe(img.manifest.digest);

    const ls = await ocitool(['ls', dir]);
    expect(ls.stdout).toMatch(/^TAG\s+DIGEST\s+TYPE\s+SIZE/);
    expect(ls.stdout).toContain(`v1   ${img.manifest.digest}  oci-manifest`);
    const json = jsonEvents<{ tag: string; digest: string }>((await ocitool(['ls', '--json', `oci:${dir}`])).stdout, 'image');
    expect(json.map((e) => [e.tag, e.digest])).toEqual([
      ['v1', img.manifest.digest],
      ['v2', img.manifest.digest],
    ]);

    const raw = await ocitool(['inspect', '--raw', `oci:${dir}:v2`]);
    expect(raw.stdout).toBe((await readFile(l.blobPath(img.manifest.digest))).toString());
    const pretty = JSON.parse((await ocitool(['inspect', `${dir}:v1`])).stdout);
    expect(pretty.layers).toHaveLength(2);
    const config = JSON.parse((await ocitool(['inspect', '--config', `oci:${dir}@${img.manifest.digest}`])).stdout);
    expect(config.rootfs.diff_ids).toHaveLength(2);

    expect((await ocitool(['rm', `oci:${dir}:v1`])).code).toBe(0);
    expect((await ocitool(['ls', '-q', dir])).stdout).toBe('v2\n');
  });

  it('inspect resolves an index to the host platform, or to --platform', async () => {
    const dir = join(work, 'multi');
    const l = await OciLayout.init(dir);
    const amd = await writeTestImage(l, { seed: 'amd', platform: { os: 'linux', architecture: 'amd64' } });
    const arm = await writeTestImage(l, { seed: 'arm', platform: { os: 'linux', architecture: 'arm64' } });
    const index = await l.putBytes(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
          { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      }),
      MediaType.OciIndex,
    );
    await l.tag(index, 'multi');
    const armCfg = JSON.parse((await ocitool(['inspect', '--config', '--platform', 'linux/arm64', `oci:${dir}:multi`])).stdout);
    expect(armCfg.architecture).toBe('arm64');
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    expect(JSON.parse((await ocitool(['inspect', '--config', `oci:${dir}:multi`])).stdout).architecture).toBe(host);
    expect(JSON.parse((await ocitool(['inspect', '--raw', `oci:${dir}:multi`])).stdout).manifests).toHaveLength(2);
    const none = await ocitool(['inspect', '--platform', 'linux/s390x', `oci:${dir}:multi`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no image for platform linux\/s390x \(index has: linux\/amd64, linux\/arm64\)/);
  });

  it('verify fails on a flipped byte, naming the blob, and passes again after repair', async () => {
    const dir = join(work, 'flip');
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 'v1' });
    expect(lastLine((await ocitool(['verify', dir])).stdout)).toMatch(/4 blobs verified, 0 unreferenced/);
    const path = l.blobPath(img.layers[0]!.digest);
    const good = await readFile(path);
    const bad = Buffer.from(good);
    bad[10] = bad[10]! ^ 0x80;
    await writeFile(path, bad);
    const r = await ocitool(['verify', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(img.layers[0]!.digest);
    expect(r.stderr.trimEnd().split('\n').pop()).toMatch(/^ocitool: verify: oci:.*: 1 problem found$/);
    await writeFile(path, good);
    expect((await ocitool(['verify', '--diff-ids', dir])).code).toBe(0);
  });

  it('gc removes what nothing reaches', async () => {
    const dir = join(work, 'gc');
    const l = await OciLayout.init(dir);
    await writeTestImage(l, { tag: 'keep', seed: 'k' });
    const gone = await writeTestImage(l, { tag: 'gone', seed: 'g' });
    expect((await ocitool(['rm', `oci:${dir}:gone`])).code).toBe(0);
    const r = await ocitool(['gc', dir]);
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toMatch(/^removed 4 blobs .* kept 4 blobs$/);
    await expect(stat(l.blobPath(gone.manifest.digest))).rejects.toThrow();
    expect((await ocitool(['verify', dir])).code).toBe(0);
  });
});

describe('ocitool CLI errors', () => {
  it('malformed index.json: one line, exit 1, nothing modified', async () => {
    const dir = join(work, 'malformed');
    await cp('testdata/ggcr-layouts/test_index_one_image', dir, { recursive: true });
    await writeFile(join(dir, 'index.json'), '{"schemaVersion": 2, "manifests": [');
    const before = await snapshot(dir);
    for (const args of [['ls', dir], ['tag', `oci:${dir}:a`, 'b'], ['gc', dir], ['verify', dir], ['rm', `oci:${dir}:a`], ['inspect', `oci:${dir}:a`]]) {
      const r = await ocitool(args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^ocitool: .*index\.json: malformed JSON.*\n$/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(await snapshot(dir)).toEqual(before);
  });

  it('a missing layout, tag or blob is named, exit 1', async () => {
    const missing = await ocitool(['ls', join(work, 'nope')]);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toBe(`ocitool: ${join(work, 'nope')}: not an OCI layout (no oci-layout file)\n`);
    const dir = join(work, 'tags');
    await OciLayout.init(dir);
    const r = await ocitool(['inspect', `oci:${dir}:v9`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ocitool: oci:${dir}:v9: no such tag\n`);
  });

  it('usage errors exit 2; --debug adds a stack trace', async () => {
    expect((await ocitool([])).code).toBe(2);
    expect((await ocitool(['frobnicate'])).code).toBe(2);
    expect((await ocitool(['ls'])).code).toBe(2);
    const bad = await ocitool(['inspect', 'docker://Foo/Bar']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^ocitool: .*Foo\/Bar.*\n$/);
    const unknown = await ocitool(['inspect', 'oci:']);
    expect(unknown.code).toBe(2);
    const dbg = await ocitool(['--debug', 'ls', join(work, 'nope')]);
    expect(dbg.code).toBe(1);
    expect(dbg.stderr).toMatch(/\n\s+at /);
    // bin/ocitool runs the bundle that `npm run build` makes (the start-up time it saves is the point).
    expect(dbg.stderr).toMatch(/dist\/bundle\/main\.cjs:\d+/);
  });
});

describe('concurrent writers', () => {
  it('four processes tagging into one layout at once lose no tag', async () => {
    const dir = join(work, 'concurrent');
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l);
    const script = `
      const { OciLayout } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
      const l = await OciLayout.open(process.argv[1]);
      const desc = JSON.parse(process.argv[2]);
      for (let i = 0; i < 25; i++) await l.tag(desc, 'p' + process.argv[3] + '-' + i);
    `;
    const { spawn } = await import('node:child_process');
    const runs = [0, 1, 2, 3].map(
      (p) =>
        new Promise<number>((resolve) => {
          const c = spawn(process.execPath, ['--input-type=module', '-e', script, dir, JSON.stringify(img.manifest), String(p)], { stdio: 'inherit' });
          c.on('close', (code) => resolve(code ?? 1));
        }),
    );
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
    const tags = (await l.tags()).map((t) => t.tag).sort();
    expect(tags).toHaveLength(100);
    expect(new Set(tags).size).toBe(100);
    expect(await readdir(join(dir, '.ocitool'))).not.toContain('index.lock');
  });
});
