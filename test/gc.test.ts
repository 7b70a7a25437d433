/**
 * gc on hostile layouts (links that lead out of the layout, foreign files in the private folder) and
 * gc racing writers (a build or a copy paused between blobs; leases left by dead writers).
 */
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, rename, stat, symlink, utimes, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gc } from '../src/content/gc.js';
import type { Store } from '../src/content/store.js';
import { buildImage } from '../src/image/build.js';
import { copyImage } from '../src/image/copy-image.js';
import { OciLayout } from '../src/layout/layout.js';
import { verifyLayout } from '../src/layout/verify.js';
import type { Descriptor } from '../src/spec/types.js';
import { ROOT, ocitool } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { makeTree } from './helpers/trees.js';
import { tmpDir } from './helpers/tools.js';

let work: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ path: work, remove: cleanup } = await tmpDir('gc'));
});
afterAll(() => cleanup());

/** A pid that no process has: one that just exited. */
const deadPid = (): number => spawnSync('true').pid!;

/** Content, mode and mtime of every file in a folder. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const s = await stat(join(dir, name));
    out[name] = `${(s.mode & 0o7777).toString(8)} ${s.mtimeMs} ${await readFile(join(dir, name), 'utf8')}`;
  }
  return out;
}

const oneLine = (stderr: string): string[] => stderr.trim().split('\n');

describe('gc never deletes through links or outside its own names', () => {
  it('refuses a layout whose temp folder links to another folder, and the files there stay', async () => {
    const dir = join(work, 'linked-tmp');
    const victim = join(work, 'victim-tmp');
    const l = await OciLayout.init(dir);
    await writeTestImage(l, { tag: 't' });
    const stray = await l.putBytes('stray', 'text/plain');
    // Files with the names ocitool's temp files have (a dead pid) and others.
    const old = new Date('2001-01-01T00:00:00Z');
    await makeTree(victim, { [`blob-${deadPid()}-0123456789ab`]: 'precious 1', 'passwd': 'precious 2', [`write-1-aaaaaaaaaaaa`]: 'precious 3' }, { mtime: old });
    await chmod(join(victim, 'passwd'), 0o600);
    const before = await snapshot(victim);
    await mkdir(join(dir, '.ocitool'), { recursive: true });
    await rename(join(dir, '.ocitool', 'tmp'), join(work, 'linked-tmp-orig')).catch(() => undefined);
    await symlink(victim, join(dir, '.ocitool', 'tmp'));

    const r = await ocitool(['gc', dir], { timeoutMs: 10_000 });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/gc of oci:.*linked-tmp refused, nothing removed: \.ocitool\/tmp is a symbolic link/)]);
    expect(await snapshot(victim)).toEqual(before);
    expect(await l.stat(stray.digest)).toBe(5); // nothing removed in the layout either
  });

  it("refuses a layout whose blobs/sha256 links to another layout's blobs: nothing deleted there", async () => {
    const other = await OciLayout.init(join(work, 'other'));
    const img = await writeTestImage(other, { tag: 'mine' });
    const dir = join(work, 'linked-blobs');
    await OciLayout.init(dir);
    await rename(join(dir, 'blobs', 'sha256'), join(work, 'linked-blobs-orig'));
    await symlink(join(work, 'other', 'blobs', 'sha256'), join(dir, 'blobs', 'sha256'));
    const before = await snapshot(join(work, 'other', 'blobs', 'sha256'));

    const r = await ocitool(['gc', dir], { timeoutMs: 10_000 });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/gc of oci:.*linked-blobs refused, nothing removed: blobs\/sha256 is a symbolic link/)]);
    expect(await snapshot(join(work, 'other', 'blobs', 'sha256'))).toEqual(before);
    expect(await readdir(join(work, 'other', 'blobs', 'sha256'))).toHaveLength(2 + img.layers.length);

    // A linked blobs folder is refused the same way; verify names it too.
    const dir2 = join(work, 'linked-blobs-2');
    await OciLayout.init(dir2);
    await rename(join(dir2, 'blobs'), join(work, 'linked-blobs-2-orig'));
    await symlink(join(work, 'other', 'blobs'), join(dir2, 'blobs'));
    const r2 = await ocitool(['gc', dir2], { timeoutMs: 10_000 });
    expect(r2.code).toBe(1);
    expect(oneLine(r2.stderr)).toEqual([expect.stringMatching(/refused, nothing removed: blobs is a symbolic link/)]);
    expect(await snapshot(join(work, 'other', 'blobs', 'sha256'))).toEqual(before);
    const v = await ocitool(['verify', dir2], { timeoutMs: 10_000 });
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/linked-blobs-2: blobs is a symbolic link/);
  });

  it('in its own temp folder removes only stale files whose names it made', async () => {
    const dir = join(work, 'foreign-tmp');
    const l = await OciLayout.init(dir);
    await writeTestImage(l, { tag: 't' });
    const tmp = join(dir, '.ocitool', 'tmp');
    const pid = deadPid();
    const stale = `blob-${pid}-0123456789ab`;
    await makeTree(tmp, { [stale]: 'half a blob', 'notes.txt': 'mine', [`blob-${pid}-xyz`]: 'not our shape', 'sub/blob-1-0123456789ab': 'in a folder' });
    const r = await ocitool(['gc', dir], { timeoutMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/and 1 temp files/);
    expect((await readdir(tmp)).sort()).toEqual([`blob-${pid}-xyz`, 'notes.txt', 'sub']);
    expect(await readFile(join(tmp, 'sub', 'blob-1-0123456789ab'), 'utf8')).toBe('in a folder');
  });
});

/** A store that serves `inner` but, before handing out its `pauseAt`-th blob, awaits `pause()`. */
function pausingStore(inner: OciLayout, pauseAt: number, pause: () => Promise<void>): Store {
  let blobs = 0;
  return {
    name: inner.name,
    exists: (d) => inner.exists(d),
    resolve: (r) => inner.resolve(r),
    push: (d, c) => inner.push(d, c),
    tag: (d, t) => inner.tag(d, t),
    async fetch(desc: Descriptor): Promise<Readable> {
      if (!desc.mediaType.includes('manifest') && ++blobs === pauseAt) await pause();
      return inner.fetch(desc);
    },
  };
}

describe('gc while a writer stores blobs', () => {
  it('a build paused between two base layers while gc runs still tags an image that verifies', async () => {
    const base = await OciLayout.init(join(work, 'base'));
    const img = await writeTestImage(base, { tag: 'base', layers: 3, seed: 'build' });
    const dest = await OciLayout.init(join(work, 'build-dest'));
    let gcOut = '';
    // The second base layer is fetched (by the copy that writes the image) only after a gc (another process) has swept the destination.
    const store = pausingStore(base, 3, async () => { // (the first blob read is the base config)
      const r = await ocitool(['gc', dest.dir], { timeoutMs: 10_000 });
      expect(r.code).toBe(0);
      gcOut = r.stdout;
    });
    const src = join(work, 'build-src');
    await makeTree(src, { 'hello.txt': 'hello\n' });
    await buildImage({ destination: dest, tag: 'built', base: { store, descriptor: img.manifest }, layers: [{ kind: 'add', src, dest: '/' }], created: 0 });
    // What the build had stored by then (its new layer, the base layers copied so far) was all held.
    expect(gcOut).toMatch(/removed 0 blobs .*kept (\d+) blobs \(\1 held by writers' leases\)/);
    expect(gcOut).not.toMatch(/kept 0 blobs/);
    const v = await verifyLayout(dest);
    expect(v.problems).toEqual([]);
    expect(v.unreferenced).toEqual([]);
    expect(await readdir(dest.leaseDir)).toEqual([]); // released after the tag
  });

  it('a copy paused between blobs while gc runs still tags an image that verifies', async () => {
    const src = await OciLayout.init(join(work, 'copy-src'));
    await writeTestImage(src, { tag: 'v1', layers: 3, seed: 'copy' });
    const dest = await OciLayout.init(join(work, 'copy-dest'));
    const store = pausingStore(src, 3, async () => {
      expect((await ocitool(['gc', dest.dir], { timeoutMs: 10_000 })).code).toBe(0);
    });
    await copyImage(store, 'v1', dest, { tag: 'v1', concurrency: 1 });
    const v = await verifyLayout(dest);
    expect(v.problems).toEqual([]);
    expect(v.checked).toBe(5);
  });

  it('a held manifest keeps what it refers to until the lease is released', async () => {
    const l = await OciLayout.init(join(work, 'held'));
    const img = await writeTestImage(l, { layers: 2, seed: 'held' }); // stored, not in index.json
    const lease = await l.lease();
    await lease.hold(img.manifest);
    const kept = await ocitool(['gc', l.dir], { timeoutMs: 10_000 });
    expect(kept.stdout).toMatch(/removed 0 blobs .*kept 4 blobs \(4 held by writers' leases\)/);
    await lease.release();
    expect((await gc(l)).removed).toHaveLength(4);
  });

  it('a blob a writer finds stored while gc sweeps is never deleted under it', async () => {
    const dir = join(work, 'sweep');
    const setup = await OciLayout.init(dir, { sync: false });
    const blobs: Descriptor[] = [];
    for (let i = 0; i < 1500; i++) blobs.push(await setup.putBytes(`garbage ${i}`, 'text/plain'));
    const writer = await OciLayout.open(dir);
    const lease = await writer.lease();
    const sweeping = gc(await OciLayout.open(dir));
    // Once the sweep moves garbage aside, the writer asks for blobs from the end of the list.
    while (!(await readdir(setup.tmpDir)).some((n) => n.startsWith('trash-'))) await new Promise((r) => setImmediate(r));
    const found: Descriptor[] = [];
    for (const d of [...blobs].reverse()) if (await writer.exists(d)) found.push(d);
    const result = await sweeping;
    for (const d of found) expect(await writer.stat(d.digest), d.digest).toBe(d.size);
    expect(found.length).toBeGreaterThan(0);
    expect(result.removed.length).toBeGreaterThan(0);
    await lease.release();
  });

  it("ignores and removes a dead writer's lease once it is old, honours it before", async () => {
    const dir = join(work, 'stale-lease');
    const l = await OciLayout.init(dir);
    const blob = await l.putBytes('left by a writer that died', 'text/plain');
    await mkdir(l.leaseDir, { recursive: true });
    const lease = join(l.leaseDir, `lease-${deadPid()}-0123456789ab`);
    await writeFile(lease, `${JSON.stringify({ pid: 1, host: 'elsewhere', time: 0 })}\n${blob.digest} text/plain\n`);
    expect((await gc(l)).removed).toEqual([]); // fresh: its owner may be on another host, still writing
    expect(await l.stat(blob.digest)).toBeDefined();
    const old = new Date(Date.now() - 3600_000);
    await utimes(lease, old, old);
    expect((await gc(l)).removed.map((b) => b.digest)).toEqual([blob.digest]);
    expect(await readdir(l.leaseDir)).toEqual([]);
  });

  it('puts back what a gc that died mid-sweep had moved aside', async () => {
    const dir = join(work, 'trash');
    const l = await OciLayout.init(dir);
    const img = await writeTestImage(l, { tag: 't' });
    const trash = join(l.tmpDir, `trash-${deadPid()}-0123456789ab`);
    await mkdir(trash, { recursive: true });
    const layer = img.layers[0]!.digest;
    await rename(l.blobPath(layer), join(trash, layer.replace(':', '-')));
    await gc(l);
    expect((await verifyLayout(l)).problems).toEqual([]);
    expect(await readdir(l.tmpDir)).toEqual([]);
  });
});

describe('gc and referrers', () => {
  it("a rebuilt tag's old image goes with its SBOM; the current image, its SBOM, a signature of that SBOM and an untagged image stay", async () => {
    const dir = join(work, 'rebuilt');
    const ref = `oci:${dir}:v1`;
    const app = join(ROOT, 'testdata/app-minimal');
    const env = { env: { OCITOOL_CACHE_DIR: join(work, 'rebuilt-cache') } };
    const digestOf = async (args: string[]): Promise<string> => {
      const r = await ocitool(args, env);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').pop()!;
    };
    const old = await digestOf(['build', '--app', app, '--tag', ref, '--created', '1']);
    const current = await digestOf(['build', '--app', app, '--tag', ref, '--created', '2']);
    expect(current).not.toBe(old);
    // An image kept by an untagged entry (a pull without a tag), with no subject: a root as ever.
    const untagged = await digestOf(['build', '--add', join(ROOT, 'testdata/hello-app'), '--tag', `oci:${dir}`]);
    const layout = await OciLayout.open(dir);
    const referrersOf = async (digest: string): Promise<string[]> => {
      const r = await ocitool(['referrers', '--json', `oci:${dir}@${digest}`]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type?: string; digest?: string }).filter((e) => e.type !== 'done' && e.digest).map((e) => e.digest!);
    };
    const [oldSbom] = await referrersOf(old);
    const [sbom] = await referrersOf(current);
    expect(oldSbom && sbom).toBeTruthy();
    const note = join(work, 'rebuilt-note.txt');
    await writeFile(note, 'signed');
    const signature = await digestOf(['artifact', 'pack', '--artifact-type', 'application/vnd.example.signature', '--subject', `oci:${dir}@${sbom}`, note]);

    const before = new Set((await layout.roots()).map((d) => d.digest));
    for (const d of [current, untagged, oldSbom!, sbom!, signature]) expect(before.has(d), d).toBe(true);
    const r = await ocitool(['gc', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/, 1 referrer entries whose subject is gone;/);
    const after = (await layout.roots()).map((d) => d.digest);
    expect(after.sort()).toEqual([current, untagged, sbom!, signature].sort());
    for (const d of [old, oldSbom!]) expect(await layout.stat(d), d).toBeUndefined();
    const verified = await verifyLayout(layout);
    expect([verified.problems, verified.unreferenced]).toEqual([[], []]);
    expect(await referrersOf(current)).toContain(sbom); // (and, listed below it, the signature)
    // A second gc finds nothing more.
    expect((await ocitool(['gc', dir])).stdout).toMatch(/^removed 0 blobs/m);
  }, 60_000);
});
