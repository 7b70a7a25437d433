/**
 * References and flags at the command line: a plain argument that names a registry is refused (not made
 * into a folder), hints suggest only what parses, every flag is checked before any work (exit 2, one
 * line), `--created` takes RFC 3339 on every command that has it, and `--version` prints the version.
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { ocitool, ROOT } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { makeTree } from './helpers/trees.js';
import { ok } from './helpers/tools.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-refs-'));
  src = join(work, 'src');
  await writeTestImage(await OciLayout.init(src), { tag: 'v1' });
  await makeTree(join(work, 'dist'), { 'index.js': 'console.log(1)\n' });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const lines = (stderr: string): string[] => stderr.trim().split('\n');
/** A fresh empty folder to run a command in, so that whatever it creates shows. */
async function emptyCwd(name: string): Promise<string> {
  const d = join(work, name);
  await mkdir(d);
  return d;
}

describe('a plain argument that names a registry', () => {
  it.each([
    ['copy', 'ghcr.io/org/app:v1'],
    ['copy', 'localhost:5000/team/app:v1'],
    ['push', 'ghcr.io/org/app:v1'],
    ['push', 'localhost:5000/team/app:v1'],
  ])('%s … %s: exit 2, one line suggesting docker://, no folder made', async (verb, dst) => {
    const cwd = await emptyCwd(`cwd-${verb}-${dst.replace(/[^a-z0-9]/g, '_')}`);
    const r = await ocitool([verb, `oci:${src}:v1`, dst], { cwd });
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([expect.stringContaining(`write "docker://${dst}"`)]);
    expect(r.stderr).toMatch(/^ocitool: ".*" looks like a registry image, not a layout/);
    expect(await readdir(cwd)).toEqual([]);
  });

  it('is still a layout when that path exists, or when written ./NAME or oci:NAME', async () => {
    const cwd = await emptyCwd('cwd-existing');
    await OciLayout.init(join(cwd, 'reg.example', 'app'));
    await ok(ocitool(['copy', `oci:${src}:v1`, 'reg.example/app:v1'], { cwd }));
    expect((await ocitool(['ls', '-q', 'reg.example/app'], { cwd })).stdout).toBe('v1\n');
    await ok(ocitool(['copy', `oci:${src}:v1`, './ghcr.io/org/app:v1'], { cwd }));
    await ok(ocitool(['copy', `oci:${src}:v1`, 'oci:localhost:v2'], { cwd }));
    expect((await readdir(cwd)).sort()).toEqual(['ghcr.io', 'localhost', 'reg.example']);
  });

  it('a layout name with a dot but no registry shape (out.v1, ./x) stays a layout', async () => {
    const cwd = await emptyCwd('cwd-dots');
    await ok(ocitool(['copy', `oci:${src}:v1`, 'out.v1:v1'], { cwd }));
    expect(await readdir(cwd)).toEqual(['out.v1']);
  });
});

describe('transport hints', () => {
  it('docker:/HOST… suggests docker://HOST…, which parses; dockr:// and https:// name the transports', async () => {
    const cwd = await emptyCwd('cwd-hints');
    const one = await ocitool(['copy', 'docker:/localhost:5000/x', './o:v1'], { cwd });
    expect(one.code).toBe(2);
    expect(lines(one.stderr)).toEqual(['ocitool: invalid reference "docker:/localhost:5000/x": docker references are written docker://NAME (try "docker://localhost:5000/x")']);
    const typo = await ocitool(['copy', `oci:${src}:v1`, 'dockr://ghcr.io/org/app:v1'], { cwd });
    expect(typo.code).toBe(2);
    expect(lines(typo.stderr)).toHaveLength(1);
    expect(typo.stderr).toContain('unknown transport "dockr" (try "docker://ghcr.io/org/app:v1"); known transports: oci:DIR');
    expect(typo.stderr).not.toContain('invalid tag');
    const url = await ocitool(['copy', 'https://ghcr.io/org/app:v1', './o:v1'], { cwd });
    expect(url.code).toBe(2);
    expect(url.stderr).toContain('unknown transport "https" (try "docker://ghcr.io/org/app:v1")');
    expect(await readdir(cwd)).toEqual([]);
  });
});

describe('--version', () => {
  it("prints package.json's version, exit 0", async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await ocitool(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${version}\n`);
  });
});

describe('--created: one parser (RFC 3339 or epoch seconds) for build and repack', () => {
  const createdOf = async (ref: string): Promise<string> => (JSON.parse(await ok(ocitool(['inspect', '--config', ref]))) as { created: string }).created;

  it('repack --created 2024-01-01T00:00:00Z is accepted (as for build), and an offset and fractions are read', async () => {
    const rootfs = join(work, 'rootfs');
    await ok(ocitool(['unpack', '--rootless', `oci:${src}:v1`, rootfs]));
    await makeTree(rootfs, { 'new.txt': 'new\n' });
    const out = join(work, 'repacked');
    await ok(ocitool(['repack', rootfs, '--tag', `oci:${out}:r`, '--created', '2024-01-01T00:00:00Z']));
    expect(await createdOf(`oci:${out}:r`)).toBe('2024-01-01T00:00:00Z');
    await ok(ocitool(['build', '--tag', `oci:${out}:b`, '--add', join(work, 'dist'), '--created', '2024-01-01T00:00:00.750+01:00']));
    expect(await createdOf(`oci:${out}:b`)).toBe('2023-12-31T23:00:00Z');
    await ok(ocitool(['repack', rootfs, '--tag', `oci:${out}:e`, '--created', '@1704067200']));
    expect(await createdOf(`oci:${out}:e`)).toBe('2024-01-01T00:00:00Z');
  });

  it.each(['2024-02-30T00:00:00Z', '2024-01-01', 'Jan 1 2024', '1960-01-01T00:00:00Z', 'soon'])('--created %s is a usage error on build and repack alike', async (v) => {
    const out = join(work, `bad-created-${v.replace(/[^0-9a-z]/gi, '_')}`);
    const b = await ocitool(['build', '--tag', `oci:${out}:b`, '--add', join(work, 'dist'), '--created', v]);
    const r = await ocitool(['repack', join(work, 'no-rootfs'), '--tag', `oci:${out}:r`, '--created', v]);
    for (const x of [b, r]) {
      expect(x.code).toBe(2);
      expect(lines(x.stderr)).toEqual([`ocitool: --created ${JSON.stringify(v)}: expected an RFC 3339 time (e.g. 2024-01-01T00:00:00Z) or seconds since the epoch, from 1970 to 9999`]);
    }
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
  });
});

describe('every flag is checked before any work', () => {
  it('build --env FOO: exit 2 before a layer is written', async () => {
    const out = join(work, 'env-foo');
    const r = await ocitool(['build', '--tag', `oci:${out}:v1`, '--add', join(work, 'dist'), '--env', 'FOO']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(['ocitool: --env "FOO": expected KEY=VALUE']);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
  });

  it('build --add ./dist:app (a relative destination): exit 2, says the destination must be absolute', async () => {
    const out = join(work, 'add-rel');
    const r = await ocitool(['build', '--tag', `oci:${out}:v1`, '--add', './dist:app'], { cwd: work });
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(['ocitool: --add ./dist:app: the destination "app" must be an absolute path in the image, e.g. --add ./dist:/app']);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
    // An existing file with a ':' in its name is still a source.
    await makeTree(join(work, 'odd'), { 'a:b': 'colon\n' });
    await ok(ocitool(['build', '--tag', `oci:${out}:v1`, '--add', 'odd/a:b:/a-b.txt'], { cwd: work }));
  });

  it('build --add GOOD --add MISSING and --expose junk: nothing written before the error', async () => {
    const out = join(work, 'late-missing');
    const r = await ocitool(['build', '--tag', `oci:${out}:v1`, '--add', join(work, 'dist'), '--add', join(work, 'missing')]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`ocitool: --add ${join(work, 'missing')}: no such file or directory`]);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
    const e = await ocitool(['build', '--tag', `oci:${out}:v1`, '--add', join(work, 'dist'), '--expose', 'http']);
    expect(e.code).toBe(2);
    expect(lines(e.stderr)).toEqual(['ocitool: --expose "http": expected PORT[/tcp|udp|sctp]']);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
  });

  it('rm A BAD: no tag is removed when a later reference is wrong', async () => {
    const layout = join(work, 'rm-layout');
    await ok(ocitool(['copy', `oci:${src}:v1`, `oci:${layout}:keep`]));
    const r = await ocitool(['rm', `oci:${layout}:keep`, `oci:${layout}`]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect((await ocitool(['ls', '-q', layout])).stdout).toBe('keep\n');
  });

  it('index create --annotation junk IMAGE: exit 2, no layout made (the option takes one value, not the image after it)', async () => {
    const out = join(work, 'index-bad');
    const r = await ocitool(['index', 'create', '--tag', `oci:${out}:i`, '--annotation', 'junk', `oci:${src}:v1`]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(['ocitool: --annotation "junk": expected KEY=VALUE']);
    await expect(readdir(out)).rejects.toThrow(/ENOENT/);
  });

  it('artifact pack --annotation junk --subject docker://…: exit 2 before the subject is looked up', async () => {
    // The subject names a port nothing listens on: looking it up first would be a network failure (exit 1).
    const t0 = Date.now();
    const r = await ocitool(['artifact', 'pack', join(work, 'dist', 'index.js'), '--artifact-type', 'text/plain', '--annotation', 'junk', '--subject', 'docker://127.0.0.1:9/x:v1', '--timeout', '5']);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(['ocitool: --annotation "junk": expected KEY=VALUE']);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

describe('checks before a registry is asked (the source names a port nothing listens on)', () => {
  const nowhere = 'docker://127.0.0.1:9/x:v1';
  it('unpack into a non-empty DIR, inspect --platform junk, copy --manifest MISSING: one line, at once', async () => {
    const full = join(work, 'full');
    await makeTree(full, { 'there.txt': 'x\n' });
    const t0 = Date.now();
    const u = await ocitool(['unpack', '--timeout', '20', nowhere, full]);
    expect(u.code).toBe(2);
    expect(lines(u.stderr)).toEqual([`ocitool: unpack: ${full} is not empty`]);
    const i = await ocitool(['inspect', '--timeout', '20', '--platform', 'linux/', nowhere]);
    expect(i.code).toBe(2);
    expect(lines(i.stderr)).toHaveLength(1);
    expect(i.stderr).toContain('linux/');
    const missing = join(work, 'no-manifest.json');
    const c = await ocitool(['copy', '--timeout', '20', '--manifest', missing, nowhere, `oci:${join(work, 'never')}:v1`]);
    expect(c.code).toBe(1);
    expect(lines(c.stderr)).toEqual([`ocitool: copy: --manifest ${missing}: no such file`]);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

describe('--help', () => {
  it('describes positional arguments, says which options repeat, and shows one compression range', async () => {
    const copy = await ok(ocitool(['copy', '--help']));
    expect(copy).toMatch(/^ {2}src +oci:DIR/m);
    expect(copy).toMatch(/^ {2}dst +where it goes/m);
    expect(copy).toMatch(/-a, --all-platforms, --all/);
    const pull = await ok(ocitool(['pull', '--help']));
    expect(pull).toMatch(/copy a whole index, not only this host's platform/);
    const unpack = await ok(ocitool(['unpack', '--help']));
    expect(unpack).toMatch(/--uid-map +CONTAINER:HOST:SIZE: map these user ids; repeatable/);
    const pack = await ok(ocitool(['artifact', 'pack', '--help']));
    expect(pack).toMatch(/--annotation +KEY=VALUE on the manifest; repeatable/);
    const build = await ok(ocitool(['build', '--help']));
    expect(build.replace(/\s+/g, ' ')).toMatch(/--platform OS\/ARCH\[\/VARIANT\] [^[]*\(default: the base's/);
    for (const help of [copy, build, await ok(ocitool(['repack', '--help']))]) {
      expect(help.replace(/\s+/g, ' ')).toContain('level of --compression: gzip 0-9 (default 6), zstd 1-19 (default 3)');
    }
  });
});
