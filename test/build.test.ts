/**
 * ocitool build, read back by umoci (an independent implementation): what umoci unpacks must be
 * exactly the source tree, or for a --diff layer exactly the upper tree.
 */
import { chmod, lstat, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { build, type LayerSpec } from '../src/image/build.js';
import { LayerCache } from '../src/layer/cache.js';
import type { Descriptor, ImageManifest } from '../src/spec/types.js';
import { OciToolError } from '../src/util/errors.js';
import { layerEntryNames } from './helpers/layers.js';
import { lastLine, ocitool } from './helpers/cli.js';
import { makeTree, type Node } from './helpers/trees.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { runTool, skopeo, umoci, ok } from './helpers/tools.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-build-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** path → type, mode and link target for every entry: what "the same tree" means here. */
async function describeTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const s = await lstat(p);
      const mode = (s.mode & 0o7777).toString(8);
      if (s.isSymbolicLink()) out[r] = `symlink ${await readlink(p)}`;
      else if (s.isDirectory()) {
        out[r] = `dir ${mode}`;
        await walk(p, r);
      } else out[r] = `file ${mode} ${s.size} nlink=${s.nlink}`;
    }
  };
  await walk(root, '');
  return out;
}

async function unpackWithUmoci(layout: string, tag: string): Promise<string> {
  const bundle = join(work, `bundle-${tag}-${Math.random().toString(36).slice(2)}`);
  await ok(umoci(['unpack', '--image', `${layout}:${tag}`, bundle]));
  return join(bundle, 'rootfs');
}

async function expectSameTree(a: string, b: string): Promise<void> {
  expect(await describeTree(b)).toEqual(await describeTree(a));
  const d = await runTool('diff', ['-r', '--no-dereference', a, b]);
  expect(d.stdout + d.stderr).toBe('');
  expect(d.code).toBe(0);
}

/** Names in the last layer of an image (read straight from the layout). */
async function lastLayerNames(layoutDir: string, tag: string): Promise<string[]> {
  const l = await OciLayout.open(layoutDir);
  const desc = await l.resolve(tag);
  const manifest = JSON.parse((await l.fetchBytes(desc)).toString()) as ImageManifest;
  return layerEntryNames(l, manifest.layers[manifest.layers.length - 1]!);
}

const SOURCE: Record<string, Node> = {
  'bin/tool': { file: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'bin/suid': { file: 'x', mode: 0o4755 },
  'etc/secret': { file: 's', mode: 0o600 },
  'etc/conf': 'key=value\n',
  'tmp': { dir: true, mode: 0o1777 },
  'empty': { dir: true },
  'data/big.bin': 'B'.repeat(3 * 1024 * 1024 + 17),
  'data/hard-a': 'shared content',
  'data/hard-b': { hardlink: 'data/hard-a' },
  'links/rel': { symlink: '../etc/conf' },
  'links/abs-dangling': { symlink: '/nowhere/at/all' },
  'links/dir': { symlink: '../data' },
  [`deep/${'long-directory-name-'.repeat(4)}/${'even-longer-file-name-'.repeat(5)}.txt`]: 'long path',
  'unicode/héllo wörld ✓.txt': 'utf-8 name',
};

describe('ocitool build, read back by umoci', () => {
  it('umoci unpacks an --add layer to exactly the source tree', async () => {
    const src = join(work, 'src');
    await makeTree(src, SOURCE);
    const layout = join(work, 'l1');
    const r = await ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', src]);
    expect(r.stderr).toMatch(/layer sha256:/);
    expect(r.code).toBe(0);
    expect(lastLine(r.stdout)).toMatch(/^sha256:[0-9a-f]{64}$/);
    await ok(ocitool(['verify', '--diff-ids', layout]));
    await expectSameTree(src, await unpackWithUmoci(layout, 'v1'));
  });

  it('base + --diff unpacks to exactly UPPER: deletions, dir↔file, a dir emptied and refilled', async () => {
    const lower = join(work, 'lower');
    const upper = join(work, 'upper');
    const common = { 'keep/a': 'a', 'keep/b': 'b', 'chmod-me': { file: 'c', mode: 0o644 } } as Record<string, Node>;
    await makeTree(lower, { ...common, 'del/file': 'x', 'del-file': 'y', 'dir-to-file/inner': 'i', 'file-to-dir': 'f', 'refill/old1': '1', 'refill/old2': '2', 'edit': 'before' });
    await makeTree(upper, { ...common, 'dir-to-file': 'now a file', 'file-to-dir/inner': 'i', 'refill/new1': 'n1', 'edit': 'after!', 'added/sub/f': 'new' });
    await chmod(join(upper, 'chmod-me'), 0o600);
    const layout = join(work, 'l2');
    await ok(ocitool(['build', '--tag', `oci:${layout}:base`, '--add', lower]));
    const r = await ok(ocitool(['build', '--tag', `oci:${layout}:next`, '--from', `oci:${layout}:base`, '--diff', lower, upper]));
    expect(lastLine(r)).toMatch(/^sha256:/);
    await ok(ocitool(['verify', '--diff-ids', layout]));
    await expectSameTree(upper, await unpackWithUmoci(layout, 'next'));

    const names = await lastLayerNames(layout, 'next');
    // A diff layer holds no unchanged file.
    expect(names.filter((n) => n.startsWith('keep/') && n !== 'keep/')).toEqual([]);
    expect(names).toEqual(expect.arrayContaining(['.wh.del', '.wh.del-file', 'refill/.wh..wh..opq', 'edit', 'chmod-me', 'dir-to-file']));
  });

  it('--exclude and --ignore-file leave paths out; --add SRC:DEST places them', async () => {
    const src = join(work, 'ctx');
    await makeTree(src, { 'app.js': 'js', 'node_modules/x/i.js': 'm', 'logs/a.log': 'l', 'docs/keep.md': 'k', 'docs/drop.md': 'd' });
    await writeFile(join(work, 'ignore'), 'docs/*.md\n!docs/keep.md\n');
    const layout = join(work, 'l3');
    await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', `${src}:/srv/app`, '--exclude', 'node_modules', '--exclude', '*/*.log', '--ignore-file', join(work, 'ignore')]));
    expect((await lastLayerNames(layout, 'v1')).sort()).toEqual(['srv/', 'srv/app/', 'srv/app/app.js', 'srv/app/docs/', 'srv/app/docs/keep.md', 'srv/app/logs/'].sort());
  });

  it('on a base, the parents implied by --add keep the base\'s directories (modes, owners); --chown applies to added entries only', async () => {
    const baseTree = join(work, 'base-tree');
    await makeTree(baseTree, { tmp: { dir: true, mode: 0o1777 }, root: { dir: true, mode: 0o700 }, 'root/.profile': 'p' });
    const layout = join(work, 'parents');
    await ok(ocitool(['build', '--tag', `oci:${layout}:base`, '--add', `${baseTree}:/`]));
    const ctx = join(work, 'parents-ctx');
    await makeTree(ctx, { 'app.js': 'js' });
    await ok(ocitool(['build', '--from', `oci:${layout}:base`, '--tag', `oci:${layout}:tmp-app`, '--add', `${ctx}:/tmp/app`, '--chown', '1000:1000']));
    expect((await lastLayerNames(layout, 'tmp-app')).sort()).toEqual(['tmp/app/', 'tmp/app/app.js'].sort());
    await ok(ocitool(['build', '--from', `oci:${layout}:tmp-app`, '--tag', `oci:${layout}:app`, '--add', `${ctx}/app.js:/root/bin/app.js`, '--chown', '1000:1000']));
    expect(await lastLayerNames(layout, 'app')).toEqual(['root/bin/app.js']);
    const rootfs = await unpackWithUmoci(layout, 'app');
    const st = async (p: string): Promise<[string, number, number]> => {
      const s = await lstat(join(rootfs, p));
      return [(s.mode & 0o7777).toString(8), s.uid, s.gid];
    };
    expect(await st('tmp')).toEqual(['1777', 0, 0]);
    expect(await st('root')).toEqual(['700', 0, 0]);
    expect(await st('tmp/app/app.js')).toEqual(['644', 1000, 1000]);
    expect(await st('root/bin/app.js')).toEqual(['644', 1000, 1000]);
    // From scratch, the implied parents are entries of their own (0755), as before.
    await ok(ocitool(['build', '--tag', `oci:${layout}:scratch`, '--add', `${ctx}:/tmp/app`]));
    expect((await lastLayerNames(layout, 'scratch')).sort()).toEqual(['tmp/', 'tmp/app/', 'tmp/app/app.js'].sort());
  });

  it('is byte-reproducible across paths, mtimes, umask and directory creation order', async () => {
    const spec: Record<string, Node> = { 'z/last': 'z', 'a/first': 'a', 'm/mid/deep': 'd', 'x': { file: 'exec', mode: 0o755 } };
    const one = join(work, 'repro-one');
    await makeTree(one, spec, { mtime: new Date('2022-02-02T00:00:00Z') });
    const two = join(work, 'elsewhere', 'repro-two');
    await makeTree(two, Object.fromEntries(Object.entries(spec).reverse()), { mtime: new Date('2024-04-04T00:00:00Z') });
    const env = { SOURCE_DATE_EPOCH: '1600000000' };
    const a = lastLine(await ok(ocitool(['build', '--tag', `oci:${join(work, 'ra')}:v1`, '--add', one, '--env', 'A=1'], { env })));
    const b = lastLine(
      await ok(
        runTool('sh', ['-c', `umask 077 && exec node "$@"`, 'sh', 'bin/ocitool', 'build', '--tag', `oci:${join(work, 'rb')}:v1`, '--add', two, '--env', 'A=1'], { env: { ...process.env, ...env } }),
      ),
    );
    expect(b).toBe(a);
    const c = lastLine(await ok(ocitool(['build', '--tag', `oci:${join(work, 'rc')}:v1`, '--add', one, '--env', 'A=2'], { env })));
    expect(c).not.toBe(a);
  });

  it('skopeo inspect --config shows every config flag', async () => {
    const layout = join(work, 'cfg');
    await ok(
      ocitool([
        'build', '--tag', `oci:${layout}:cfg`, '--platform', 'linux/arm64/v8',
        '--env', 'PATH=/usr/bin', '--env', 'MODE=prod', '--entrypoint', '["/bin/sh","-c"]', '--cmd', 'echo hi',
        '--workdir', '/srv', '--user', '1000:1000', '--label', 'org.example=yes', '--expose', '8080', '--expose', '53/udp',
        '--volume', '/data', '--stop-signal', 'SIGTERM', '--annotation', 'org.opencontainers.image.source=https://example.invalid/x',
        '--created', '2021-01-02T03:04:05Z',
      ]),
    );
    const cfg = JSON.parse(await ok(skopeo(['inspect', '--config', `oci:${layout}:cfg`])));
    expect(cfg).toMatchObject({
      architecture: 'arm64',
      os: 'linux',
      created: '2021-01-02T03:04:05Z',
      config: {
        Env: ['PATH=/usr/bin', 'MODE=prod'],
        Entrypoint: ['/bin/sh', '-c'],
        Cmd: ['echo hi'],
        WorkingDir: '/srv',
        User: '1000:1000',
        Labels: { 'org.example': 'yes' },
        ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
        Volumes: { '/data': {} },
        StopSignal: 'SIGTERM',
      },
    });
    expect(cfg.history.every((h: { empty_layer?: boolean }) => h.empty_layer === true)).toBe(true);
    const manifest = JSON.parse(await ok(ocitool(['inspect', `oci:${layout}:cfg`])));
    expect(manifest.annotations['org.opencontainers.image.source']).toBe('https://example.invalid/x');
  });

  it('bad input: a missing --add source or a whiteout-like file name is one line, exit 1', async () => {
    const layout = join(work, 'bad');
    const r = await ocitool(['build', '--tag', `oci:${layout}:x`, '--add', join(work, 'does-not-exist')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ocitool: --add .*does-not-exist: no such file or directory\n$/);
    const wh = join(work, 'wh');
    await makeTree(wh, { '.wh.sneaky': 'x' });
    const r2 = await ocitool(['build', '--tag', `oci:${layout}:x`, '--add', wh]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/\.wh\.sneaky: a file named \.wh\.\* cannot be put in a layer/);
    expect(await readdir(join(layout, '.ocitool', 'tmp')).catch(() => [])).toEqual([]);
  });
});


describe('build (the library call) on a base in a registry', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ recordRequests: true });
  });
  afterAll(async () => reg?.stop());

  /** A cacheable layer (as --app's dependency layer is) of `src`. */
  const cacheable = (src: string): LayerSpec => ({ kind: 'select', src, dest: '/deps', keep: () => true, label: 'COPY deps', cache: 'lockfile-hash' });
  const failureOf = async (p: Promise<unknown>): Promise<OciToolError> => {
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OciToolError);
    return err as OciToolError;
  };

  it('a missing base tag fails with the base\'s one-line error, before any layer is made: nothing uploaded, nothing cached', async () => {
    const src = join(work, 'lib-deps');
    await makeTree(src, { 'node_modules/a/index.js': 'a', 'node_modules/b/package.json': '{}' });
    const cacheDir = join(work, 'lib-cache');
    const from = `docker://${reg.host}/lib/base:missing`;
    const to = `docker://${reg.host}/lib/out:v1`;
    const err = await failureOf(build(to, { from, insecure: true, layers: [cacheable(src)], layerCache: new LayerCache(cacheDir) }));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toMatch(new RegExp(`^${reg.host}: manifest missing of lib/base: not found \\(404\\)(: MANIFEST_UNKNOWN: manifest unknown)?$`));
    // A source the walk cannot read changes nothing: the error is still the base's.
    const walkFails = await failureOf(build(to, { from, insecure: true, layers: [cacheable(join(work, 'no-such-tree'))], layerCache: new LayerCache(cacheDir) }));
    expect(walkFails.message).toBe(err.message);
    const log = await reg.requests();
    expect(log.filter((q) => q.method !== 'GET' && q.method !== 'HEAD')).toEqual([]);
    expect(log.filter((q) => q.uri.startsWith('/v2/lib/out/'))).toEqual([]);
    await expect(readdir(join(cacheDir, 'layers/sha256'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a build refused before it reads its base (two platforms into a docker-archive) is one usage line, exit 2, though the base is missing too', async () => {
    // The base is resolved while the build starts: its failure, coming after the refusal, must not
    // surface as an unhandled rejection (a stack trace, exit 1).
    const src = join(work, 'two-platforms');
    await makeTree(src, { 'a.txt': 'a' });
    const r = await ocitool(['build', '--insecure', '--from', `docker://${reg.host}/lib/base:missing`, '--platform', 'linux/amd64,linux/arm64', '--add', `${src}:/x`, '--tag', `docker-archive:${join(work, 'two.tar')}:app:v1`]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/cannot hold an image index/)]);
  });

  it('BuildResult.created is the build\'s time as the config records it: `created` when given, else the time it started', async () => {
    const dir = join(work, 'lib-created');
    const layers: LayerSpec[] = [{ kind: 'add', src: join(work, 'lib-deps'), dest: '/x' }];
    const given = await build(`oci:${dir}:given`, { layers, created: 1_700_000_000 });
    expect(given.created).toBe(1_700_000_000);
    const configOf = async (d: Descriptor): Promise<{ created: string }> => JSON.parse((await (await OciLayout.open(dir)).fetchBytes(d)).toString()) as { created: string };
    expect((await configOf(given.config)).created).toBe('2023-11-14T22:13:20Z');
    const before = Math.floor(Date.now() / 1000);
    const now = await build(`oci:${dir}:now`, { layers });
    expect(now.created).toBeGreaterThanOrEqual(before);
    expect(now.created).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(Date.parse((await configOf(now.config)).created) / 1000).toBe(now.created);
  });
});
