/**
 * Hostile and unusual tars read as archives (docker-archive:, oci-archive:) and layers (unpack), each
 * built here byte by byte: every case fails fast with one line naming the file and what is wrong in
 * it, within a bounded memory, or (GNU -G archives, empty blobs) is read right.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DockerArchiveSource } from '../src/archive/source.js';
import { TarIndex } from '../src/archive/tar-index.js';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { ImageManifest } from '../src/spec/types.js';
import { BIN, lastLine, ocitool, jsonEvents } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { BLOCK, END, headerBlock, member, paxHeader, tarBytes } from './helpers/tar-bytes.js';
import { ok, runTool, type ToolResult } from './helpers/tools.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-tar-hostile-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The stderr of a failed run: exit 1 and exactly one line. */
function oneLine(res: ToolResult): string {
  expect(res.code, res.stderr).toBe(1);
  const lines = res.stderr.trimEnd().split('\n');
  expect(lines, res.stderr).toHaveLength(1);
  return lines[0]!;
}

/** Runs ocitool under /usr/bin/time: its result, seconds taken and peak RSS in MB. */
async function measured(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ res: ToolResult; seconds: number; rssMB: number }> {
  const rssFile = join(work, `rss-${randomBytes(4).toString('hex')}`);
  const t0 = Date.now();
  const res = await runTool('/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, BIN, ...args], { env: { ...process.env, ...env }, timeoutMs: 30_000 });
  const seconds = (Date.now() - t0) / 1000;
  return { res, seconds, rssMB: Number((await readFile(rssFile, 'utf8')).trim().split('\n').pop()) / 1024 };
}

const json = (v: unknown): string => JSON.stringify(v);

/** A layout `name` holding one image (tag `t`) of the one layer `tar` (gzipped); its path. */
async function imageOfLayer(name: string, tar: Buffer): Promise<string> {
  const dir = join(work, name);
  const layout = await OciLayout.init(dir);
  const layer = await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip);
  const config = await layout.putBytes(json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(tar)] } }), MediaType.OciConfig);
  await layout.tag(await layout.putBytes(json({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }), MediaType.OciManifest), 't');
  return dir;
}

/** A docker save tar with one image: manifest.json, a config, and `extra` members (the layers). */
function dockerSave(layers: string[], diffIds: string[], extra: Buffer[]): Buffer {
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } });
  return tarBytes(member({ name: 'manifest.json' }, json([{ Config: 'c.json', RepoTags: ['x:1'], Layers: layers }])), member({ name: 'c.json' }, config), ...extra);
}

describe('headers that would send a reader backwards or nowhere', () => {
  it('a 2 KiB archive with PAX size=-1536 fails at once with one line (oci-archive and docker-archive)', async () => {
    const file = join(work, 'negative.tar');
    const tar = tarBytes(paxHeader([['size', '-1536']]), member({ name: 'oci-layout' }, '{}'));
    await writeFile(file, tar);
    expect(tar.length).toBeLessThanOrEqual(3 * 1024);
    for (const t of ['oci-archive', 'docker-archive']) {
      const t0 = Date.now();
      const res = await ocitool(['ls', `${t}:${file}`], { timeoutMs: 20_000 });
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(oneLine(res)).toBe(`ocitool: ${t}:${file}: PAX size="-1536" is not a non-negative integer`);
    }
  });
});

describe('archives GNU tar writes', () => {
  it('an oci-archive made with tar --format=gnu -G is listed and copied, its names read right', async () => {
    const dir = join(work, 'gnu-layout');
    const img = await writeTestImage(await OciLayout.init(dir), { tag: 'g1', seed: 'gnu' });
    const file = join(work, 'gnu-G.tar');
    execFileSync('tar', ['--format=gnu', '-G', '-cf', file, '-C', dir, '.']);
    const index = await TarIndex.open(file);
    expect(index.find('oci-layout')).toBeDefined();
    expect(index.find(`blobs/sha256/${img.manifest.digest.slice(7)}`)?.size).toBe(img.manifest.size);
    const listed = jsonEvents<{ tag: string; digest: string }>(await ok(ocitool(['ls', '--json', `oci-archive:${file}`])), 'image');
    expect(listed).toEqual([expect.objectContaining({ tag: 'g1', digest: img.manifest.digest })]);
    const out = join(work, 'from-gnu');
    expect(lastLine(await ok(ocitool(['copy', `oci-archive:${file}:g1`, `oci:${out}:g1`])))).toBe(img.manifest.digest);
    await ok(ocitool(['verify', out]));
  });
  it('a layer made with tar --format=gnu -G unpacks to the right paths', async () => {
    const tree = join(work, 'gnu-tree');
    await mkdir(join(tree, 'gd', 'sub'), { recursive: true });
    await writeFile(join(tree, 'gd', 'sub', 'file'), 'from GNU tar\n');
    const layerFile = join(work, 'gnu-layer.tar');
    // As `tar -C DIR .` writes it: a './' entry for the root first, then './gd/…'.
    execFileSync('tar', ['--format=gnu', '-G', '-cf', layerFile, '-C', tree, '.']);
    const tar = await readFile(layerFile);
    const dir = await imageOfLayer('gnu-layer-layout', tar);
    const root = join(work, 'gnu-root');
    await ok(ocitool(['--quiet', 'unpack', `oci:${dir}:t`, root]));
    expect(await readFile(join(root, 'gd', 'sub', 'file'), 'utf8')).toBe('from GNU tar\n');
    expect((await readdir(root)).filter((n) => n !== '.ocitool' && !n.startsWith('.'))).toEqual(['gd']);
  });
});

describe('empty members', () => {
  it('an oci-archive holding an empty blob (an artifact with an empty file) copies, with no retry', async () => {
    const dir = join(work, 'empty-layout');
    const layout = await OciLayout.init(dir);
    const empty = await layout.putBytes(Buffer.alloc(0), 'application/octet-stream');
    const config = await layout.putBytes('{}', MediaType.OciEmpty);
    const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: 'application/x-test', config, layers: [{ ...empty, annotations: { 'org.opencontainers.image.title': 'empty.txt' } }] };
    const root = await layout.putBytes(json(m), MediaType.OciManifest);
    await layout.tag(root, 'e');
    const file = join(work, 'empty.tar');
    execFileSync('tar', ['-cf', file, '-C', dir, '.']);
    const out = join(work, 'from-empty');
    const res = await ocitool(['copy', '--json', `oci-archive:${file}:e`, `oci:${out}:e`]);
    expect(res.stderr).toBe('');
    expect(res.stdout).not.toMatch(/blob-retry/);
    expect(res.code).toBe(0);
    expect((await readFile(join(out, 'blobs', 'sha256', empty.digest.slice(7)))).length).toBe(0);
    // Written by ocitool and read back; into a docker archive it is refused in one line (it used to crash).
    const ours = join(work, 'empty-ours.tar');
    expect(lastLine(await ok(ocitool(['copy', `oci:${dir}:e`, `oci-archive:${ours}:e`])))).toBe(root.digest);
    expect(lastLine(await ok(ocitool(['copy', `oci-archive:${ours}:e`, `oci:${out}:e2`])))).toBe(root.digest);
    const da = join(work, 'empty-docker.tar');
    expect(oneLine(await ocitool(['--quiet', 'copy', `oci:${dir}:e`, `docker-archive:${da}:x:y`]))).toBe(`ocitool: docker-archive:${da}: an artifact (config ${MediaType.OciEmpty}) cannot go into a docker archive`);
    expect(existsSync(da)).toBe(false);
  });
});

describe('a docker-archive listing one layer 5,000 times', () => {
  it('is read in seconds, the layer sniffed and hashed once', async () => {
    const layerTar = tarBytes(member({ name: 'noise' }, randomBytes(1_400_000)));
    const gz = gzipSync(layerTar);
    const file = join(work, 'repeated.tar');
    await writeFile(file, dockerSave(Array(5000).fill('l.tar.gz'), Array(5000).fill(digestOf(layerTar)), [member({ name: 'l.tar.gz' }, gz)]));
    const t0 = Date.now();
    const listed = jsonEvents<{ tag: string }>(await ok(ocitool(['ls', '--json', `docker-archive:${file}`], { timeoutMs: 30_000 })), 'image');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(listed.map((l) => l.tag)).toEqual(['x:1']);
    const streams = vi.spyOn(TarIndex.prototype, 'stream');
    const heads = vi.spyOn(TarIndex.prototype, 'head');
    try {
      const src = await DockerArchiveSource.open(file);
      const [desc] = await src.list();
      expect(desc!.size).toBeGreaterThan(5000 * 60);
      expect(streams).toHaveBeenCalledTimes(1);
      expect(heads).toHaveBeenCalledTimes(1);
      await src.close();
    } finally {
      streams.mockRestore();
      heads.mockRestore();
    }
  });
});

describe('links in an archive that lead nowhere', () => {
  const layerTar = tarBytes(member({ name: 'f' }, 'x'));
  const cases: [string, Buffer, string][] = [
    ['symlink-outside', member({ name: 'abc/layer.tar', flag: '2', linkname: '../../../etc/passwd' }), 'member "abc/layer.tar" is a symbolic link to "../../../etc/passwd", which points outside the archive'],
    ['symlink-absolute', member({ name: 'abc/layer.tar', flag: '2', linkname: '/etc/passwd' }), 'member "abc/layer.tar" is a symbolic link to "/etc/passwd", which points outside the archive'],
    ['symlink-missing', member({ name: 'abc/layer.tar', flag: '2', linkname: '../def/layer.tar' }), 'member "abc/layer.tar" is a symbolic link to "../def/layer.tar", which is not in the archive'],
    ['hardlink-root', member({ name: 'abc/layer.tar', flag: '1', linkname: '/f' }), 'member "abc/layer.tar" is a hard link to "/f", which is not in the archive'],
    ['hardlink-climbing', member({ name: 'abc/layer.tar', flag: '1', linkname: '../f' }), 'member "abc/layer.tar" is a hard link to "../f", which points outside the archive'],
  ];
  for (const [label, link, why] of cases) {
    it(`${label}: one line naming the member, its target and what is wrong`, async () => {
      const file = join(work, `${label}.tar`);
      await writeFile(file, dockerSave(['abc/layer.tar'], [digestOf(layerTar)], [link]));
      expect(oneLine(await ocitool(['copy', `docker-archive:${file}`, `oci:${join(work, `out-${label}`)}:t`]))).toBe(`ocitool: docker-archive:${file}: ${why}`);
      expect(existsSync(join(work, `out-${label}`, 'index.json')) ? await readFile(join(work, `out-${label}`, 'index.json'), 'utf8') : '').not.toMatch(/"t"/);
    });
  }
});

describe('JSON members over the 4 MiB cap', () => {
  it('a 1.5 GB manifest.json or index.json (sparse) is refused unread, peak RSS under 300 MB', async () => {
    const size = 1_500_000_000;
    for (const [t, name, before] of [['docker-archive', 'manifest.json', []], ['oci-archive', 'index.json', [member({ name: 'oci-layout' }, '{"imageLayoutVersion":"1.0.0"}')]]] as const) {
      const file = join(work, `huge-${name}.tar`);
      const head = Buffer.concat([...before, headerBlock({ name, size })]);
      const fh = await open(file, 'w');
      await fh.write(head, 0, head.length, 0);
      await fh.truncate(head.length + Math.ceil(size / BLOCK) * BLOCK + END.length);
      await fh.close();
      const { res, seconds, rssMB } = await measured(['ls', `${t}:${file}`]);
      expect(oneLine(res)).toBe(`ocitool: ${t}:${file}: ${name}: ${size} bytes is over the 4194304-byte limit for JSON documents`);
      expect(seconds).toBeLessThan(10);
      expect(rssMB).toBeLessThan(300);
    }
  });
});

describe('a layer with a GNU long name claiming 800 MiB in 800 KB', () => {
  it('unpack refuses it while streaming: one line, exit 1, peak RSS under 300 MB, nothing unpacked', async () => {
    const tar = Buffer.concat([headerBlock({ name: '././@LongLink', flag: 'L', magic: 'gnu', size: 800 * 1024 * 1024 }), Buffer.alloc(800 * 1024, 0x61)]);
    const dir = await imageOfLayer('longname-layout', tar);
    const root = join(work, 'longname-root');
    const { res, seconds, rssMB } = await measured(['--quiet', 'unpack', `oci:${dir}:t`, root]);
    expect(oneLine(res)).toMatch(/GNU long name at byte 0 claims 838860800 bytes, over the 65537-byte limit$/);
    expect(seconds).toBeLessThan(10);
    expect(rssMB).toBeLessThan(300);
    expect(existsSync(root) ? await readdir(root) : []).toEqual([]);
  });
});

describe('a gzip bomb as a docker-archive', () => {
  /** A gzip of a tar whose one member is `mib` MiB of zeros, made of concatenated gzip members (about 1 KB per MiB). */
  function bomb(mib: number): Buffer {
    const zeros = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
    return Buffer.concat([gzipSync(headerBlock({ name: 'big', size: mib * 1024 * 1024 })), ...Array<Buffer>(mib).fill(zeros), gzipSync(END)]);
  }

  it('is refused past the bound, with nothing left in TMPDIR', async () => {
    const file = join(work, 'bomb.tar.gz');
    await writeFile(file, bomb(256));
    const tmp = join(work, 'tmp-bomb');
    await mkdir(tmp);
    const t0 = Date.now();
    const res = await ocitool(['ls', `docker-archive:${file}`], { env: { TMPDIR: tmp } });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(oneLine(res)).toBe(`ocitool: docker-archive:${file}: decompresses to more than 67108864 bytes (a gzip bomb?); set OCITOOL_MAX_INFLATED to a larger byte count to read it`);
    expect(await readdir(tmp)).toEqual([]);
  });

  /** Runs ocitool `args` on a 2 GiB bomb in a private TMPDIR, interrupts it once the temp file exists; its exit code. */
  async function interrupted(args: (file: string) => string[], tmp: string): Promise<number | null> {
    const file = join(work, 'bomb-big.tar.gz');
    if (!existsSync(file)) await writeFile(file, bomb(2048));
    await mkdir(tmp);
    const child = spawn(process.execPath, [BIN, ...args(file)], { env: { ...process.env, TMPDIR: tmp, OCITOOL_MAX_INFLATED: '100G' }, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code, signal) => r(code ?? (signal === 'SIGINT' ? 130 : -1))));
    const t0 = Date.now();
    let seen = false;
    while (!seen && Date.now() - t0 < 10_000) {
      seen = (await readdir(tmp)).some((n) => existsSync(join(tmp, n, 'archive.tar')));
      if (!seen) await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toBe(true);
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  it('Ctrl-C while it is being decompressed removes the temp file (ls: no handler of its own; copy: its own)', async () => {
    const ls = join(work, 'tmp-sigint-ls');
    expect(await interrupted((f) => ['ls', `docker-archive:${f}`], ls)).toBe(130);
    expect(await readdir(ls)).toEqual([]);
    const copy = join(work, 'tmp-sigint-copy');
    expect(await interrupted((f) => ['copy', `docker-archive:${f}`, `oci:${join(work, 'from-bomb')}:b`], copy)).toBe(130);
    expect(await readdir(copy)).toEqual([]);
  });
});
