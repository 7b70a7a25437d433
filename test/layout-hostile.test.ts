/**
 * Layouts built to hurt: blobs that are FIFOs, directories or dangling links; index.json and oci-layout
 * as 1 GiB sparse files; twenty processes changing one index.json at once.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { Annotation } from '../src/spec/types.js';
import { BIN, ocitool } from './helpers/cli.js';
import { writeTestImage, type TestImage } from './helpers/images.js';
import { runTool, tmpDir } from './helpers/tools.js';

let work: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ path: work, remove: cleanup } = await tmpDir('hostile'));
});
afterAll(() => cleanup());

type Kind = 'fifo' | 'dir' | 'dangling';
const words: Record<Kind, RegExp> = { fifo: /is a FIFO, not a regular file/, dir: /is a directory, not a regular file/, dangling: /is a symbolic link to nothing, not a regular file/ };

/** Replaces a stored blob by a FIFO, a directory or a link to nothing. */
async function spoil(path: string, kind: Kind): Promise<void> {
  await unlink(path);
  if (kind === 'fifo') execFileSync('mkfifo', [path]);
  else if (kind === 'dir') await mkdir(path);
  else await symlink(join(work, 'nothing-here'), path);
}

let n = 0;
async function hostileLayout(kind: Kind, which: 'manifest' | 'layer'): Promise<{ dir: string; digest: string; img: TestImage }> {
  const dir = join(work, `${kind}-${which}-${n++}`);
  const l = await OciLayout.init(dir);
  const img = await writeTestImage(l, { tag: 't' });
  const digest = which === 'manifest' ? img.manifest.digest : img.layers[0]!.digest;
  await spoil(l.blobPath(digest), kind);
  return { dir, digest, img };
}

/** Exit 1 within 10 s, with a line naming the blob, the layout and what is wrong; no errno text, no stack. */
function expectNamed(r: { code: number; stderr: string; timedOut?: boolean }, digest: string, dir: string, kind: Kind): void {
  expect(r.timedOut).toBeUndefined();
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split('\n');
  const hit = lines.find((line) => line.includes(`blob ${digest} in oci:${dir}`));
  expect(hit, r.stderr).toMatch(words[kind]);
  expect(r.stderr).not.toMatch(/EISDIR|ENOENT|ELOOP|^\s+at /m);
}

describe('blobs that are not regular files', () => {
  for (const kind of ['fifo', 'dir', 'dangling'] as const) {
    it(`a ${kind} manifest: verify, inspect, gc and unpack each fail at once with one line naming it`, async () => {
      const { dir, digest } = await hostileLayout(kind, 'manifest');
      const t = { timeoutMs: 10_000 };
      const [verify, inspect, gc, unpack] = await Promise.all([
        ocitool(['verify', dir], t),
        ocitool(['inspect', `oci:${dir}:t`], t),
        ocitool(['gc', dir], t),
        ocitool(['unpack', `oci:${dir}:t`, join(work, `rootfs-${n++}`)], t),
      ]);
      for (const r of [verify, inspect, gc, unpack]) expectNamed(r, digest, dir, kind);
      expect(gc.stderr.trim().split('\n')).toHaveLength(1);
      expect(inspect.stderr.trim().split('\n')).toHaveLength(1);
      expect(unpack.stderr.trim().split('\n')).toHaveLength(1);
    });
  }

  it('a FIFO layer: verify and unpack fail at once naming it; gc, which reads no layers, keeps it and finishes', async () => {
    const { dir, digest } = await hostileLayout('fifo', 'layer');
    const t = { timeoutMs: 10_000 };
    const [verify, unpack, gc] = await Promise.all([ocitool(['verify', dir], t), ocitool(['unpack', `oci:${dir}:t`, join(work, `rootfs-${n++}`)], t), ocitool(['gc', dir], t)]);
    expectNamed(verify, digest, dir, 'fifo');
    expectNamed(unpack, digest, dir, 'fifo');
    expect(gc.code).toBe(0);
    expect(gc.timedOut).toBeUndefined();
  });
});

describe('a lock file that is not a lock', () => {
  it('a FIFO or a huge file at .ocitool/index.lock: tag fails at once with one line naming it', async () => {
    for (const kind of ['fifo', 'huge'] as const) {
      const dir = join(work, `lock-${kind}`);
      const l = await OciLayout.init(dir);
      await writeTestImage(l, { tag: 't' });
      const lock = join(dir, '.ocitool', 'index.lock');
      if (kind === 'fifo') execFileSync('mkfifo', [lock]);
      else {
        await writeFile(lock, '');
        await truncate(lock, 1 << 30);
      }
      const r = await ocitool(['tag', `oci:${dir}:t`, 'again'], { timeoutMs: 10_000 });
      expect(r.timedOut).toBeUndefined();
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(kind === 'fifo' ? /lock .*index\.lock is a FIFO, not a regular file/ : /lock .*index\.lock: 1073741824 bytes is over the 4096-byte limit/)]);
    }
  });
});

describe('documents read into memory', () => {
  /** Runs the CLI under /usr/bin/time; returns the result and the peak RSS in MB. */
  async function measured(args: string[]): Promise<{ code: number; stderr: string; rssMb: number }> {
    const r = await runTool('/usr/bin/time', ['-f', 'maxrss-kb=%M', process.execPath, BIN, ...args], { timeoutMs: 20_000 });
    const m = /maxrss-kb=(\d+)/.exec(r.stderr);
    return { code: r.code, stderr: r.stderr.replace(/.*maxrss-kb=\d+\n?/, '').replace(/Command exited with non-zero status \d+\n/, ''), rssMb: Number(m?.[1]) / 1024 };
  }

  it('a 1 GiB sparse index.json or oci-layout is refused by its size, before it is read', async () => {
    const dir = join(work, 'sparse-index');
    await OciLayout.init(dir);
    await truncate(join(dir, 'index.json'), 1 << 30);
    for (const args of [['verify', dir], ['ls', dir], ['inspect', `oci:${dir}:t`]]) {
      const r = await measured(args);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/index\.json: 1073741824 bytes is over the 4194304-byte limit/)]);
      expect(r.rssMb).toBeLessThan(300);
    }
    const dir2 = join(work, 'sparse-header');
    await OciLayout.init(dir2);
    await truncate(join(dir2, 'oci-layout'), 1 << 30);
    const r = await measured(['verify', dir2]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/sparse-header\/oci-layout: 1073741824 bytes is over the 4194304-byte limit/)]);
    expect(r.rssMb).toBeLessThan(300);
  });
});

describe('concurrent writers of index.json', () => {
  it('20 processes adding to one index and tagging at once: every change lands', async () => {
    const dir = join(work, 'concurrent');
    const l = await OciLayout.init(dir);
    await writeTestImage(l, { tag: 'amd', platform: { os: 'linux', architecture: 'amd64' }, seed: 'amd', layers: 1 });
    const archs = Array.from({ length: 14 }, (_, i) => `arch${i}`);
    for (const a of archs) await writeTestImage(l, { tag: a, platform: { os: 'linux', architecture: a }, seed: a, layers: 1 });
    const first = await ocitool(['index', 'create', '--tag', `oci:${dir}:multi`, `oci:${dir}:amd`]);
    expect(first.code, first.stderr).toBe(0);
    const runs = await Promise.all([
      ...archs.map((a) => ocitool(['index', 'add', '--tag', `oci:${dir}:multi`, `oci:${dir}:${a}`], { timeoutMs: 90_000 })),
      ...Array.from({ length: 6 }, (_, i) => ocitool(['tag', `oci:${dir}:amd`, `copy${i}`], { timeoutMs: 90_000 })),
    ]);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const index = JSON.parse((await ocitool(['inspect', '--raw', `oci:${dir}:multi`])).stdout);
    expect(index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).sort()).toEqual(['amd64', ...archs].sort());
    const tags = (await l.readIndex()).manifests.map((d) => d.annotations?.[Annotation.RefName]);
    for (let i = 0; i < 6; i++) expect(tags).toContain(`copy${i}`);
    expect((await ocitool(['verify', dir])).code).toBe(0);
    await rm(join(dir, '.ocitool'), { recursive: true, force: true });
  }, 120_000);
});

describe('writers never write through a linked folder of the layout', () => {
  it('a linked .ocitool/tmp or blobs/sha256: copy and tag refuse in one line, and the folder linked to stays empty', async () => {
    const { readdir } = await import('node:fs/promises');
    const src = join(work, 'linked-src');
    await writeTestImage(await OciLayout.init(src), { tag: 'v1', seed: 'linked' });
    for (const rel of ['.ocitool/tmp', 'blobs/sha256']) {
      const dir = join(work, `linked-${rel.replace(/\W/g, '-')}`);
      const outside = join(work, `outside-${rel.replace(/\W/g, '-')}`);
      await mkdir(outside, { recursive: true });
      const img = await writeTestImage(await OciLayout.init(dir), { tag: 'before', seed: 'linked' });
      await rm(join(dir, rel), { recursive: true, force: true });
      await mkdir(join(dir, rel, '..'), { recursive: true });
      await symlink(outside, join(dir, rel));
      const tries = [['copy', `oci:${src}:v1`, `oci:${dir}:v1`], ...(rel === '.ocitool/tmp' ? [['tag', `oci:${dir}@${img.manifest.digest}`, 'x']] : [])];
      for (const args of tries) {
        const r = await ocitool(args, { timeoutMs: 10_000 });
        expect(r.code, `${rel}: ${args[0]}`).toBe(1);
        expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('ocitool:')), r.stderr).toHaveLength(1);
        expect(r.stderr).toContain(`${rel} is a symbolic link: ocitool writes only inside the layout`);
      }
      expect(await readdir(outside)).toEqual([]);
    }
  });
});
