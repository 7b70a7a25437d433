/**
 * bin/ocitool's code cache: made by a verb's first run, used while the bundle is the same file,
 * never used for a changed bundle (even one of the same length, which V8 alone would take), made
 * again when damaged (even past V8's own header, where V8 would crash), never taken from a file of
 * another user or one others may write, never written through a planted link, and never in the
 * way: an unwritable cache folder or runs at once leave a working command and no temp file.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, cp, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

let tree: string;
const bundle = (): string => join(tree, 'dist', 'bundle', 'main.cjs');
const cacheDir = (): string => join(tree, 'dist', 'bundle', 'cache');

/** Runs the copied launcher; resolves with exit code and output. */
function launch(args: string[], nodeFlags: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeFlags, join(tree, 'bin', 'ocitool'), ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  // A copy of what a package install holds (bin/, the bundle, package.json), so that the test's
  // changes to the bundle and its cache touch nothing the other tests run.
  tree = join(tmpdir(), `ocitool-launcher-${randomBytes(6).toString('hex')}`);
  await mkdir(join(tree, 'dist', 'bundle'), { recursive: true });
  await cp(join(ROOT, 'bin'), join(tree, 'bin'), { recursive: true });
  await cp(join(ROOT, 'dist', 'bundle', 'main.cjs'), bundle());
  await writeFile(join(tree, 'package.json'), JSON.stringify({ name: 'ocitool', version: '9.8.7' }));
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

describe('the launcher code cache', () => {
  it("is made by a verb's first run and then used as it is", async () => {
    const first = await launch(['--version']);
    expect(first).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    const file = join(cacheDir(), 'main.v8');
    const made = await stat(file);
    expect((await readFile(file)).subarray(0, 19).toString()).toBe('ocitool-code-cache ');
    const again = await launch(['--version']);
    expect(again).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await stat(file)).mtimeMs).toBe(made.mtimeMs); // taken, not made again
    // Another verb has a cache of its own.
    expect((await launch(['ls', join(tree, 'no-such-layout')])).code).toBe(1);
    expect((await readdir(cacheDir())).sort()).toEqual(['ls.v8', 'main.v8']);
  });

  it('a changed bundle of the same length runs as changed (its old cache is not used) and gets a new cache', async () => {
    await launch(['--version']);
    const before = await readFile(join(cacheDir(), 'main.v8'));
    const source = await readFile(bundle(), 'utf8');
    // The file the version is read from, changed in place: same length, different code.
    const changed = source.replace('"../../package.json"', '"../../package.jsox"');
    expect(changed).not.toBe(source);
    expect(changed.length).toBe(source.length);
    await writeFile(bundle(), changed);
    const r = await launch(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: 'unknown\n' }); // package.jsox does not exist
    expect((await readFile(join(cacheDir(), 'main.v8'))).equals(before)).toBe(false);
    await writeFile(bundle(), source);
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
  });

  it('a damaged cache is refused and made again; the command runs', async () => {
    await launch(['--version']);
    const file = join(cacheDir(), 'main.v8');
    const good = await readFile(file);
    const newline = good.indexOf(10);
    await writeFile(file, Buffer.concat([good.subarray(0, newline + 1), randomBytes(good.length - newline - 1)]));
    const damaged = await readFile(file);
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    const remade = await stat(file);
    expect((await readFile(file)).equals(damaged)).toBe(false);
    // The new one is taken as it is.
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await stat(file)).mtimeMs).toBe(remade.mtimeMs);
  });

  it("a cache damaged past V8's own header (which V8 would take, then crash on) is not used: the command runs and the cache is made again", async () => {
    await launch(['--version']);
    const file = join(cacheDir(), 'main.v8');
    const bytes = await readFile(file);
    // Flips bytes well inside the compiled data: V8's header (magic, version, flags, length) stays intact.
    for (let i = bytes.indexOf(10) + 400; i < bytes.length - 100; i += 97) bytes[i]! ^= 0xff;
    await writeFile(file, bytes);
    const r = await launch(['--version']);
    expect(r, r.stderr.slice(0, 300)).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await readFile(file)).equals(bytes)).toBe(false);
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
  });

  it.runIf(process.getuid?.() === 0)("a cache file of another user, or one others may write, is not used but replaced by one of this user's, owner-writable only", async () => {
    await launch(['--version']);
    const file = join(cacheDir(), 'main.v8');
    await chown(file, 4321, 4321);
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await stat(file)).uid).toBe(0);
    await chmod(file, 0o666);
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it('a link planted where a temp file could be named is not written through; no temp file is left', async () => {
    await rm(cacheDir(), { recursive: true, force: true });
    await mkdir(cacheDir());
    const victim = join(tree, 'victim.txt');
    await writeFile(victim, 'keep me\n');
    // Runs first in the launcher's own process: plants a link at the temp name the launcher used to take (`main.v8.PID.tmp`).
    const preload = join(tree, 'plant.cjs');
    await writeFile(preload, `const fs = require('fs'); fs.symlinkSync(${JSON.stringify(victim)}, ${JSON.stringify(cacheDir())} + '/main.v8.' + process.pid + '.tmp');\n`);
    expect(await launch(['--version'], ['-r', preload])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect(await readFile(victim, 'utf8')).toBe('keep me\n');
    // Left: the cache, and the planted link (nothing of the run's own).
    const left = (await readdir(cacheDir())).filter((n) => n !== 'main.v8');
    expect(left).toHaveLength(1);
    expect((await lstat(join(cacheDir(), left[0]!))).isSymbolicLink()).toBe(true);
    expect((await readdir(cacheDir())).includes('main.v8')).toBe(true);
  });

  it('an unwritable cache folder: the command runs, nothing is cached, no temp file; runs at once share one cache', async () => {
    await rm(cacheDir(), { recursive: true, force: true });
    await writeFile(cacheDir(), 'not a folder');
    expect(await launch(['--version'])).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect((await readdir(join(tree, 'dist', 'bundle'))).sort()).toEqual(['cache', 'main.cjs']);
    await rm(cacheDir());
    // Every run at once finds no cache and writes one.
    const runs = await Promise.all(Array.from({ length: 6 }, () => launch(['--version'])));
    for (const r of runs) expect(r).toMatchObject({ code: 0, stdout: '9.8.7\n' });
    expect(await readdir(cacheDir())).toEqual(['main.v8']);
  });
});
