/**
 * Unpack (issue 6): the root filesystem ocitool makes equals umoci's for images umoci built (with
 * deletions, an opaque directory, hardlinks and symlinks), and crafted hostile layers never reach
 * outside the target directory.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile, link, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { ImageManifest } from '../src/spec/types.js';
import { ocitool } from './helpers/cli.js';
import { imageOf, layerTar, listing, type TarEntry } from './helpers/layers.js';
import { ok, umoci } from './helpers/tools.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-unpack-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('unpack equals umoci', () => {
  it('for an image umoci built: deletions, an opaque directory, hardlinks, symlinks, modes', async () => {
    const layout = join(work, 'umoci-layout');
    const bundle = join(work, 'umoci-bundle');
    await ok(umoci(['init', '--layout', layout]));
    await ok(umoci(['new', '--image', `${layout}:img`]));
    await ok(umoci(['unpack', '--image', `${layout}:img`, bundle]));
    const rootfs = join(bundle, 'rootfs');
    // Layer 1: a tree with links and modes.
    await mkdir(join(rootfs, 'etc/app/conf.d'), { recursive: true });
    await mkdir(join(rootfs, 'usr/lib/app'), { recursive: true });
    await mkdir(join(rootfs, 'opaque/sub'), { recursive: true });
    await writeFile(join(rootfs, 'etc/app/main.conf'), 'main\n');
    await writeFile(join(rootfs, 'etc/app/conf.d/a.conf'), 'a\n');
    await writeFile(join(rootfs, 'etc/app/conf.d/b.conf'), 'b\n');
    await writeFile(join(rootfs, 'usr/lib/app/lib.so'), 'ELF'.repeat(1000));
    await writeFile(join(rootfs, 'opaque/old.txt'), 'old\n');
    await writeFile(join(rootfs, 'opaque/sub/deep.txt'), 'deep\n');
    await writeFile(join(rootfs, 'run.sh'), '#!/bin/sh\n');
    await chmod(join(rootfs, 'run.sh'), 0o4755);
    await link(join(rootfs, 'usr/lib/app/lib.so'), join(rootfs, 'usr/lib/app/lib-hard.so'));
    await symlink('usr/lib', join(rootfs, 'lib'));
    await symlink('/etc/app/main.conf', join(rootfs, 'main.conf'));
    await symlink('../../nowhere', join(rootfs, 'etc/app/dangling'));
    await ok(umoci(['repack', '--image', `${layout}:img`, bundle]));
    // Layer 2: deletions and changes.
    await rm(join(rootfs, 'etc/app/conf.d/a.conf'));
    await rm(join(rootfs, 'usr/lib/app/lib-hard.so'));
    await rm(join(rootfs, 'main.conf'));
    await writeFile(join(rootfs, 'etc/app/main.conf'), 'changed\n');
    await chmod(join(rootfs, 'etc/app'), 0o750);
    await ok(umoci(['repack', '--image', `${layout}:img`, bundle]));
    // Layer 3, added raw: an opaque directory (its lower content hidden), an entry written through
    // the `lib` symlink, a hardlink to a file of a lower layer.
    const raw = await layerTar([
      { name: 'opaque/', type: 'directory' },
      { name: 'opaque/.wh..wh..opq' },
      { name: 'opaque/new.txt', content: 'new\n' },
      { name: 'lib/app/plugin.so', content: 'plugin' },
      { name: 'etc/app/conf.d/b-link.conf', type: 'link', linkname: 'etc/app/conf.d/b.conf' },
    ]);
    await writeFile(join(work, 'raw.tar'), raw);
    await ok(umoci(['raw', 'add-layer', '--image', `${layout}:img`, join(work, 'raw.tar')]));

    const theirs = join(work, 'umoci-out');
    await ok(umoci(['unpack', '--image', `${layout}:img`, theirs]));
    const ours = join(work, 'ours');
    const res = await ocitool(['unpack', `oci:${layout}:img`, ours]);
    if (res.code !== 0) throw new Error(res.stderr);
    execFileSync('diff', ['-r', '--no-dereference', ours, join(theirs, 'rootfs')]);
    expect(listing(ours)).toBe(listing(join(theirs, 'rootfs')));
    // What the layers did, checked directly too.
    expect(existsSync(join(ours, 'etc/app/conf.d/a.conf'))).toBe(false);
    expect(existsSync(join(ours, 'opaque/old.txt'))).toBe(false);
    expect(existsSync(join(ours, 'opaque/sub'))).toBe(false);
    expect(await readFile(join(ours, 'opaque/new.txt'), 'utf8')).toBe('new\n');
    expect(await readFile(join(ours, 'usr/lib/app/plugin.so'), 'utf8')).toBe('plugin');
    expect(readlinkSync(join(ours, 'lib'))).toBe('usr/lib');
    expect(lstatSync(join(ours, 'etc/app/conf.d/b-link.conf')).ino).toBe(lstatSync(join(ours, 'etc/app/conf.d/b.conf')).ino);
    expect(lstatSync(join(ours, 'run.sh')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(ours, 'etc/app')).mode & 0o7777).toBe(0o750);
    // The state file repack will read.
    const state = JSON.parse(await readFile(`${ours}.ocitool-state.json`, 'utf8')) as { entries: Record<string, { type: string; sha256?: string }> };
    expect(state.entries['etc/app/main.conf']).toMatchObject({ type: 'file', sha256: digestOf('changed\n') });
    expect(state.entries['opaque/old.txt']).toBeUndefined();
  });
});

describe('hostile layers', () => {
  /**
   * Unpacks a one-layer image into SANDBOX/root beside SANDBOX/outside (a sentinel tree) and returns
   * the result; the sentinel tree must come out unchanged.
   */
  async function attempt(name: string, entries: TarEntry[], extra: string[] = []): Promise<{ code: number; stderr: string; root: string; sandbox: string }> {
    const sandbox = join(work, `hostile-${name}`);
    await mkdir(join(sandbox, 'outside/etc'), { recursive: true });
    await writeFile(join(sandbox, 'outside/etc/passwd'), 'root:x:0:0\n');
    await writeFile(join(sandbox, 'outside/x'), 'keep\n');
    const before = listing(sandbox) + (await readFile(join(sandbox, 'outside/etc/passwd'), 'utf8')) + (await readFile(join(sandbox, 'outside/x'), 'utf8'));
    const image = await imageOf(join(sandbox, 'image'), [[{ name: 'root-dir/', type: 'directory' }, { name: 'etc/', type: 'directory' }, { name: 'etc/passwd', content: 'inside\n' }], entries]);
    const root = join(sandbox, 'root');
    const res = await ocitool(['unpack', '-q', ...extra, image, root]);
    const after = listing(sandbox).split('\n').filter((l) => !l.startsWith('root') && !l.startsWith('image')).join('\n');
    const expected = before.split('root:x')[0]!.split('\n').filter((l) => !l.startsWith('root') && !l.startsWith('image')).join('\n');
    expect(after).toBe(expected);
    expect(await readFile(join(sandbox, 'outside/etc/passwd'), 'utf8')).toBe('root:x:0:0\n');
    expect(await readFile(join(sandbox, 'outside/x'), 'utf8')).toBe('keep\n');
    expect((await readdir(sandbox)).sort()).toEqual(['image', 'outside', 'root', ...(res.code === 0 ? ['root.ocitool-state.json'] : [])].sort());
    return { ...res, root, sandbox };
  }

  const cases: [string, TarEntry[], RegExp][] = [
    ['dotdot', [{ name: '../outside/x', content: 'pwned' }], /entry "\.\.\/outside\/x": its path climbs out/],
    ['absolute', [{ name: `/abs/file`, content: 'pwned' }], /entry "\/abs\/file": an absolute path/],
    ['dir-dotdot', [{ name: 'a/', type: 'directory' }, { name: 'a/../../outside/x', content: 'pwned' }], /entry "a\/\.\.\/\.\.\/outside\/x": its path climbs out/],
    ['symlink-outside-then-file', [{ name: 'evil', type: 'symlink', linkname: '../outside' }, { name: 'evil/x', content: 'pwned' }], /entry "evil\/x": a symlink on its path climbs out/],
    ['relative-symlink-climbing', [{ name: 'a/', type: 'directory' }, { name: 'a/up', type: 'symlink', linkname: '../../../../../../../../outside/etc' }, { name: 'a/up/passwd', content: 'pwned' }], /entry "a\/up\/passwd": a symlink on its path climbs out/],
    ['hardlink-etc', [{ name: 'h', type: 'link', linkname: '/etc/passwd' }], /entry "h": an absolute path|hardlink target/],
    ['hardlink-climbing', [{ name: 'h', type: 'link', linkname: '../outside/etc/passwd' }], /entry "h": its path climbs out|hardlink target/],
    ['hardlink-missing', [{ name: 'h', type: 'link', linkname: 'etc/shadow' }], /entry "h": its hardlink target "etc\/shadow" is not in the root filesystem/],
    ['whiteout-climbing', [{ name: '../.wh.x' }], /entry "\.\.\/\.wh\.x": its path climbs out/],
    ['whiteout-through-symlink', [{ name: 'out', type: 'symlink', linkname: '../outside' }, { name: 'out/.wh.x' }], /entry "out\/\.wh\.x": a symlink on its path climbs out/],
  ];

  it.each(cases)('%s: refused with one line naming the layer and entry, exit 1, nothing outside touched', async (name, entries, message) => {
    const r = await attempt(name, entries);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ocitool: refused layer 2 \(sha256:[0-9a-f]{64}\): /);
    expect(r.stderr).toMatch(message);
  });

  it('an absolute symlink is resolved inside the root, as in the container: a file below it lands inside', async () => {
    const r = await attempt('absolute-symlink', [{ name: 'evil', type: 'symlink', linkname: '/etc' }, { name: 'evil/passwd', content: 'replaced\n' }]);
    expect(r.code).toBe(0);
    expect(await readFile(join(r.root, 'etc/passwd'), 'utf8')).toBe('replaced\n');
  });

  it('--skip-unsafe skips refused entries with a warning and unpacks the rest', async () => {
    const r = await attempt('skip', [{ name: '../outside/x', content: 'pwned' }, { name: 'fine.txt', content: 'ok' }], ['--skip-unsafe']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: skipped layer 2 .*entry "\.\.\/outside\/x": its path climbs out/);
    expect(await readFile(join(r.root, 'fine.txt'), 'utf8')).toBe('ok');
  });

  it('a layer whose content does not match its diff_id aborts the unpack', async () => {
    const dir = join(work, 'bad-diffid');
    const image = await imageOf(dir, [[{ name: 'a.txt', content: 'a' }]]);
    const layout = await OciLayout.open(dir);
    const desc = await layout.resolve('t');
    const m = JSON.parse((await layout.fetchBytes(desc)).toString()) as ImageManifest;
    const cfg = JSON.parse((await layout.fetchBytes(m.config)).toString()) as { rootfs: { diff_ids: string[] } };
    cfg.rootfs.diff_ids[0] = digestOf('something else');
    const newCfg = await layout.putBytes(JSON.stringify(cfg), MediaType.OciConfig);
    await layout.tag(await layout.putBytes(JSON.stringify({ ...m, config: newCfg }), MediaType.OciManifest), 't');
    const res = await ocitool(['unpack', image, join(work, 'bad-out')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/layer 1 \(sha256:[0-9a-f]{64}\) of .* decompresses to sha256:[0-9a-f]{64}, but config .* says diff_id/);
  });

  it('refuses a directory that is not empty', async () => {
    const dir = join(work, 'not-empty');
    await mkdir(dir);
    await writeFile(join(dir, 'keep'), 'x');
    const image = await imageOf(join(work, 'ne-image'), [[{ name: 'a.txt', content: 'a' }]]);
    const res = await ocitool(['unpack', image, dir]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/is not empty/);
    expect(await readFile(join(dir, 'keep'), 'utf8')).toBe('x');
  });
});

describe('repack', () => {
  it('unpack, change files, repack: umoci unpacks the result to the changed tree', async () => {
    const image = await imageOf(join(work, 'repack-src'), [
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/keep.conf', content: 'keep\n' },
        { name: 'etc/edit.conf', content: 'before\n' },
        { name: 'etc/gone.conf', content: 'gone\n' },
        { name: 'var/', type: 'directory' },
        { name: 'var/lib/', type: 'directory' },
        { name: 'var/lib/old/', type: 'directory' },
        { name: 'var/lib/old/a', content: 'a' },
        { name: 'var/lib/old/b', content: 'b' },
        { name: 'bin/', type: 'directory' },
        { name: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
        { name: 'bin/alias', type: 'symlink', linkname: 'tool' },
        { name: 'same-size', content: 'AAAA' },
      ],
    ]);
    const rootfs = join(work, 'repack-rootfs');
    await ok(ocitool(['unpack', image, rootfs]));
    // The changes: add, edit, delete, chmod, retarget a symlink, empty a directory, a file becomes a
    // directory, same size other bytes, a new hardlink.
    await writeFile(join(rootfs, 'etc/new.conf'), 'new\n');
    await writeFile(join(rootfs, 'etc/edit.conf'), 'after, longer\n');
    await rm(join(rootfs, 'etc/gone.conf'));
    await chmod(join(rootfs, 'bin/tool'), 0o700);
    await rm(join(rootfs, 'bin/alias'));
    await symlink('/bin/sh', join(rootfs, 'bin/alias'));
    await rm(join(rootfs, 'var/lib/old'), { recursive: true });
    await rm(join(rootfs, 'etc/keep.conf'));
    await mkdir(join(rootfs, 'etc/keep.conf'));
    await writeFile(join(rootfs, 'etc/keep.conf/inside'), 'dir now\n');
    await writeFile(join(rootfs, 'same-size'), 'BBBB');
    await link(join(rootfs, 'etc/new.conf'), join(rootfs, 'etc/new-hard.conf'));

    const layout = join(work, 'repack-out');
    const res = await ocitool(['repack', rootfs, '--tag', `oci:${layout}:v2`]);
    if (res.code !== 0) throw new Error(res.stderr);
    expect(res.stderr).toMatch(/\+\d+ ~\d+ -\d+/);
    const manifest = JSON.parse(await ok(ocitool(['inspect', `oci:${layout}:v2`]))) as ImageManifest;
    expect(manifest.layers).toHaveLength(2); // the unpacked image's layer, and one more
    await ok(ocitool(['verify', '--diff-ids', layout]));

    const bundle = join(work, 'repack-umoci');
    await ok(umoci(['unpack', '--image', `${layout}:v2`, bundle]));
    execFileSync('diff', ['-r', '--no-dereference', rootfs, join(bundle, 'rootfs')]);
    expect(listing(join(bundle, 'rootfs'))).toBe(listing(rootfs));
    expect(lstatSync(join(bundle, 'rootfs/etc/new-hard.conf')).ino).toBe(lstatSync(join(bundle, 'rootfs/etc/new.conf')).ino);

    // The state now describes v2: a second repack with nothing changed finds nothing.
    const again = await ocitool(['repack', rootfs, '--tag', `oci:${layout}:v3`]);
    expect(again.stderr).toMatch(/\+0 ~0 -0/);
  });

  it('refuses a directory that ocitool did not unpack', async () => {
    const dir = join(work, 'plain-dir');
    await mkdir(dir);
    const res = await ocitool(['repack', dir, '--tag', `oci:${join(work, 'x')}:y`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/has no state file .*unpack the image with ocitool unpack first/);
  });
});

describe('ownership and special files', () => {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  it.runIf(asRoot)('as root: owners applied through --uid-map/--gid-map; an unmapped id is refused', async () => {
    const image = await imageOf(join(work, 'owners'), [[{ name: 'home/', type: 'directory' }, { name: 'home/u.txt', content: 'u', uid: 1000, gid: 100 }, { name: 'root.txt', content: 'r' }]]);
    const plain = join(work, 'owners-plain');
    await ok(ocitool(['unpack', image, plain]));
    expect([lstatSync(join(plain, 'home/u.txt')).uid, lstatSync(join(plain, 'home/u.txt')).gid]).toEqual([1000, 100]);
    const mapped = join(work, 'owners-mapped');
    await ok(ocitool(['unpack', '--uid-map', '0:100000:65536', '--gid-map', '0:200000:65536', image, mapped]));
    expect([lstatSync(join(mapped, 'home/u.txt')).uid, lstatSync(join(mapped, 'home/u.txt')).gid]).toEqual([101000, 200100]);
    expect([lstatSync(join(mapped, 'root.txt')).uid, lstatSync(join(mapped, 'root.txt')).gid]).toEqual([100000, 200000]);
    const narrow = await ocitool(['unpack', '--uid-map', '0:100000:1', image, join(work, 'owners-narrow')]);
    expect(narrow.code).toBe(1);
    expect(narrow.stderr).toMatch(/entry "home\/u\.txt": its uid 1000 is not in the uid map/);
    // --rootless: owners recorded in the state file, not applied.
    const rootless = join(work, 'owners-rootless');
    await ok(ocitool(['unpack', '--rootless', image, rootless]));
    expect(lstatSync(join(rootless, 'home/u.txt')).uid).toBe(0);
    const state = JSON.parse(await readFile(`${rootless}.ocitool-state.json`, 'utf8')) as { rootless: boolean; entries: Record<string, { uid: number; gid: number }> };
    expect(state.rootless).toBe(true);
    expect(state.entries['home/u.txt']).toMatchObject({ uid: 1000, gid: 100 });
  });

  it('device nodes only as root (skipped with a warning when rootless); fifos always', async () => {
    const image = await imageOf(join(work, 'devices'), [[{ name: 'dev/', type: 'directory' }, { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }, { name: 'dev/pipe', type: 'fifo' }]]);
    const rootless = join(work, 'devices-rootless');
    const r = await ocitool(['unpack', '--rootless', image, rootless]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: skipped layer 1 .*entry "dev\/null": device nodes are made only as root/);
    expect(existsSync(join(rootless, 'dev/null'))).toBe(false);
    expect(lstatSync(join(rootless, 'dev/pipe')).isFIFO()).toBe(true);
    if (asRoot) {
      const full = join(work, 'devices-root');
      await ok(ocitool(['unpack', image, full]));
      const st = lstatSync(join(full, 'dev/null'));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(lstatSync('/dev/null').rdev);
    }
  });
});

describe('extended attributes', () => {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasTools = ((): boolean => {
    try {
      execFileSync('sh', ['-c', 'command -v setfattr && command -v getfattr && command -v tar'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.runIf(asRoot && hasTools)('are restored byte for byte from the PAX records GNU tar writes (user.* and binary security.capability)', async () => {
    const src = join(work, 'xattr-src');
    await mkdir(join(src, 'bin'), { recursive: true });
    await writeFile(join(src, 'bin/ping'), 'ELF');
    await writeFile(join(src, 'notes.txt'), 'n');
    const cap = '0x0100000200200000000000000000000000000000';
    execFileSync('setfattr', ['-n', 'security.capability', '-v', cap, join(src, 'bin/ping')]);
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello world', join(src, 'notes.txt')]);
    const tar = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '-cf', '-', '-C', src, 'bin', 'notes.txt'], { maxBuffer: 1 << 24 });
    const image = await imageOf(join(work, 'xattr-image'), [tar]);
    const out = join(work, 'xattr-out');
    const res = await ocitool(['unpack', image, out]);
    if (res.code !== 0) throw new Error(res.stderr);
    expect(res.stderr).not.toMatch(/not applied/);
    const attrs = (p: string): string => execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', p]).toString().split('\n').slice(1).join('\n');
    expect(attrs(join(out, 'bin/ping'))).toBe(attrs(join(src, 'bin/ping')));
    expect(attrs(join(out, 'bin/ping'))).toContain(`security.capability=${cap}`);
    expect(attrs(join(out, 'notes.txt'))).toContain('user.note=0x68656c6c6f20776f726c64');
    const state = JSON.parse(await readFile(`${out}.ocitool-state.json`, 'utf8')) as { entries: Record<string, { xattrs?: Record<string, string> }> };
    expect(Buffer.from(state.entries['bin/ping']!.xattrs!['security.capability']!, 'base64').toString('hex')).toBe(cap.slice(2));
  });
});
