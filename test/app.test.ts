/**
 * `build --app DIR`: the fixture app (testdata/app: real production dependencies, one nested and one
 * scoped, and a dev dependency) installed with `npm ci`, packaged as a dependency layer and an app
 * layer; config from package.json, overridden by flags; refusals in one line with nothing written;
 * umoci unpacks the tree, and buildah runs the app on a base holding this host's node.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import type { ImageConfig, ImageManifest } from '../src/spec/types.js';
import { appVariant, editJson, installFixtureApp } from './helpers/apps.js';
import { ROOT, ocitool } from './helpers/cli.js';
import { exists } from '../src/layer/sources.js';
import { layerEntryNames } from './helpers/layers.js';
import { ok, runTool, umoci } from './helpers/tools.js';
import { nodeRootTree } from './helpers/node-root.js';

let work: string;
let app: string;
/** The lockfile's production packages (not `dev`) that npm installed here: folders under node_modules/. */
async function productionPaths(dir: string): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const paths: string[] = [];
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (path !== '' && !meta.dev && (await exists(join(dir, path, 'package.json')))) paths.push(path.slice('node_modules/'.length));
  }
  return paths;
}

beforeAll(async () => {
  // Lower case: buildah names images after their path.
  work = join(tmpdir(), `ocitool-app-${randomBytes(6).toString('hex')}`);
  app = join(work, 'app');
  process.env.OCITOOL_CACHE_DIR = join(work, 'cache'); // the layer cache of every build here (never the home folder's)
  await installFixtureApp(app);
  // The dev packages are installed (and must stay out of the image).
  for (const dev of ['is-number', 'vitest']) expect(await exists(join(app, 'node_modules', dev, 'package.json'))).toBe(true);
}, 120_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A copy of the installed app, changed by `edit`. */
const variant = (name: string, edit?: (dir: string) => Promise<void>): Promise<string> => appVariant(app, join(work, name), edit);

interface Image {
  manifest: ImageManifest;
  config: ImageConfig;
  /** Entry names of each layer ('dir/' for directories). */
  layers: string[][];
}

async function readImage(layoutDir: string, tag: string): Promise<Image> {
  const l = await OciLayout.open(layoutDir);
  const manifest = JSON.parse((await l.fetchBytes(await l.resolve(tag))).toString()) as ImageManifest;
  const config = JSON.parse((await l.fetchBytes(manifest.config)).toString()) as ImageConfig;
  const layers: string[][] = [];
  for (const layer of manifest.layers) layers.push(await layerEntryNames(l, layer));
  return { manifest, config, layers };
}

/** Every path under `dir/rel`, as `prefix/rel/…` ('…/' for directories), leaving out `skip`. */
async function treeNames(dir: string, rel: string, prefix: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = `${rel}/${e.name}`;
    if (skip(r)) continue;
    out.push(e.isDirectory() ? `${prefix}${r}/` : `${prefix}${r}`);
    if (e.isDirectory()) out.push(...(await treeNames(dir, r, prefix, skip)));
  }
  return out;
}

/**
 * What the dependency layer must hold: each production package's folder as installed (without its
 * own node_modules, where only nested production packages go) and the folders that lead to them.
 */
async function expectedDependencies(dir: string, at: string): Promise<string[]> {
  const production = await productionPaths(dir);
  expect(production).toEqual(expect.arrayContaining(['express', 'debug', 'debug/node_modules/ms', '@isaacs/string-locale-compare']));
  const names = new Set([`${at}/`]);
  for (const p of production) {
    const rel = `node_modules/${p}`;
    for (let d = rel; d !== '.'; d = dirname(d)) names.add(`${at}/${d}/`);
    for (const n of await treeNames(dir, rel, `${at}/`, (r) => r === `${rel}/node_modules`)) names.add(n);
  }
  return [...names].sort();
}

/** A build that must fail: exit code, one stderr line holding `text`, no layout written. */
async function expectRefused(args: string[], code: number, text: string): Promise<void> {
  const out = join(work, `refused-${randomBytes(4).toString('hex')}`);
  const started = Date.now();
  const r = await ocitool(['build', ...args, '--tag', `oci:${out}:x`]);
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toContain(text);
  expect(await exists(out)).toBe(false);
  expect(Date.now() - started).toBeLessThan(10_000);
}

describe('build --app', () => {
  it('a dependency layer of exactly the production packages, then the app files; config from package.json', async () => {
    const out = join(work, 'plain');
    const r = await ocitool(['build', '--app', app, '--tag', `oci:${out}:v1`, '--created', '0']);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out, 'v1');
    expect(img.layers).toHaveLength(2);
    const [deps, files] = img.layers as [string[], string[]];
    expect([...deps].sort()).toEqual(await expectedDependencies(app, 'app'));
    expect(deps.some((n) => /\/(is-number|vitest|vite)\//.test(n) || n.includes('.package-lock.json') || n.includes('.bin'))).toBe(false);
    expect(files).toEqual(['app/', 'app/.dockerignore', 'app/index.js', 'app/lib/', 'app/lib/greet.js', 'app/package-lock.json', 'app/package.json']);
    const c = img.config.config!;
    expect(c.WorkingDir).toBe('/app');
    expect(c.Entrypoint).toEqual(['node', 'index.js']);
    expect(c.Env).toEqual(['NODE_ENV=production', 'GREETING=hello']);
    expect(c.User).toBe('1000:1000');
    expect(c.ExposedPorts).toEqual({ '8080/tcp': {} });
    expect(c.Labels).toEqual({
      'org.opencontainers.image.title': 'hello-app',
      'org.opencontainers.image.version': '1.2.3',
      'org.opencontainers.image.description': 'A fixture app for ocitool build --app',
      'org.opencontainers.image.licenses': 'MIT',
      'org.opencontainers.image.source': 'https://example.com/hello-app.git',
      team: 'fixtures',
    });
    const layerHistory = img.config.history!.filter((h) => !h.empty_layer).map((h) => h.created_by);
    expect(layerHistory).toEqual([expect.stringMatching(/^COPY production dependencies dir:[0-9a-f]{64} in \/app$/), expect.stringMatching(/^COPY app files dir:[0-9a-f]{64} in \/app$/)]);

    // umoci, an independent reader, unpacks the same tree.
    const bundle = join(work, 'bundle-plain');
    await ok(umoci(['unpack', '--image', `${out}:v1`, bundle]));
    const unpacked = await treeNames(join(bundle, 'rootfs'), 'app', '');
    expect(unpacked.sort()).toEqual([...new Set([...deps, ...files])].filter((n) => n !== 'app/').sort());
    expect(await readFile(join(bundle, 'rootfs/app/node_modules/debug/node_modules/ms/package.json'), 'utf8')).toContain('"version": "2.0.0"');
  }, 60_000);

  it('flags override package.json, and --add combines with --app (its layer after the app)', async () => {
    const extra = join(work, 'extra');
    await mkdir(extra);
    await writeFile(join(extra, 'note.txt'), 'extra\n');
    const out = join(work, 'override');
    const r = await ocitool(['build', '--app', app, '--tag', `oci:${out}:v1`, '--workdir', '/srv', '--user', '0:0', '--env', 'GREETING=bye', '--label', 'team=cli', '--entrypoint', 'node', '--entrypoint', 'lib/greet.js', '--compression', 'none', '--add', `${extra}:/extra`]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out, 'v1');
    expect(img.layers).toHaveLength(3);
    expect(img.layers[0]!.every((n) => n.startsWith('srv/'))).toBe(true);
    expect(img.layers[1]).toContain('srv/index.js');
    expect(img.layers[2]).toEqual(['extra/', 'extra/note.txt']);
    expect(img.manifest.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar')).toBe(true);
    const c = img.config.config!;
    expect([c.WorkingDir, c.User, c.Entrypoint, c.Env, c.Labels?.team]).toEqual(['/srv', '0:0', ['node', 'lib/greet.js'], ['NODE_ENV=production', 'GREETING=bye'], 'cli']);
  }, 60_000);

  it('takes the tag and compression from "ocitool" in package.json; without a tag anywhere, a usage error', async () => {
    const out = join(work, 'from-package');
    const dir = await variant('tagged', (d) => editJson(join(d, 'package.json'), (j) => Object.assign(j.ocitool as object, { tag: `oci:${out}:pj`, compression: 'none', cmd: ['--flag'] })));
    const r = await ocitool(['build', '--app', dir]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out, 'pj');
    expect(img.manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar']);
    expect(img.config.config!.Cmd).toEqual(['--flag']);
    const none = await ocitool(['build', '--app', app]);
    expect(none.code).toBe(2);
    expect(none.stderr.trimEnd().split('\n')).toEqual([`ocitool: build: --tag is required (or "ocitool": {"tag": …} in ${join(app, 'package.json')})`]);
  }, 60_000);

  it('with "files": what it selects, plus package.json, the lockfile and main; nothing else', async () => {
    const dir = await variant('files', (d) => editJson(join(d, 'package.json'), (j) => (j.files = ['lib/', '!lib/skip.js'])));
    await writeFile(join(dir, 'lib/skip.js'), '');
    await writeFile(join(dir, 'lib/.DS_Store'), '');
    const out = join(work, 'files-out');
    const r = await ocitool(['build', '--app', dir, '--tag', `oci:${out}:v1`]);
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(out, 'v1');
    expect(img.layers[1]).toEqual(['app/', 'app/index.js', 'app/lib/', 'app/lib/greet.js', 'app/package-lock.json', 'app/package.json']);
    expect([...img.layers[0]!].sort()).toEqual(await expectedDependencies(dir, 'app'));
  }, 60_000);

  it("an app without dependencies (the README's example): its tag from package.json, an empty dependency layer, only what files selects", async () => {
    const cwd = join(work, 'readme-cwd');
    await mkdir(cwd);
    const r = await ocitool(['build', '--app', join(ROOT, 'testdata/app-minimal')], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const img = await readImage(join(cwd, 'out/minimal'), 'v1');
    expect(img.layers).toEqual([['app/'], ['app/', 'app/package-lock.json', 'app/package.json', 'app/server.js']]);
    const c = img.config.config!;
    expect([c.Entrypoint, c.Env, c.User, c.ExposedPorts, c.Labels?.['org.example.team'], c.Labels?.['org.opencontainers.image.licenses']]).toEqual([['node', 'server.js'], ['NODE_ENV=production', 'PORT=8080'], '1000:1000', { '8080/tcp': {} }, 'web', 'Apache-2.0']);
  }, 60_000);

  it('refuses, in one line with nothing written: no lockfile, an uninstalled package, a hostile lockfile path, bad options', async () => {
    const noLock = await variant('no-lock', (d) => rm(join(d, 'package-lock.json')));
    await expectRefused(['--app', noLock], 1, `--app ${noLock}: no package-lock.json or npm-shrinkwrap.json`);
    const missing = await variant('missing', (d) => rm(join(d, 'node_modules/debug/node_modules/ms'), { recursive: true }));
    await expectRefused(['--app', missing], 1, `ms@2.0.0 (node_modules/debug/node_modules/ms, in ${join(missing, 'package-lock.json')}) is not installed`);
    const linked = await variant('linked', async (d) => {
      await rm(join(d, 'node_modules/ms'), { recursive: true });
      await symlink('/etc', join(d, 'node_modules/ms'));
    });
    await expectRefused(['--app', linked], 1, `--app ${linked}: node_modules/ms (ms, in ${join(linked, 'package-lock.json')}) is a symlink at node_modules/ms, not a package folder`);
    for (const key of ['node_modules/../../etc', '/etc']) {
      const hostile = await variant(`hostile-${randomBytes(3).toString('hex')}`, (d) => editJson(join(d, 'package-lock.json'), (j) => ((j.packages as Record<string, unknown>)[key] = { version: '1.0.0' })));
      await expectRefused(['--app', hostile], 1, `lockfile ${join(hostile, 'package-lock.json')}: entry ${JSON.stringify(key)} is a path outside the app`);
    }
    const climbing = await variant('climbing-files', (d) => editJson(join(d, 'package.json'), (j) => (j.files = ['../../etc'])));
    await expectRefused(['--app', climbing], 1, `"files" entry "../../etc" climbs out of the app`);
    const badOption = await variant('bad-option', (d) => editJson(join(d, 'package.json'), (j) => (j.ocitool = { sbom: 'none' })));
    await expectRefused(['--app', badOption], 1, `${join(badOption, 'package.json')}: "ocitool".sbom is not a build option`);
    const badEnv = await variant('bad-env', (d) => editJson(join(d, 'package.json'), (j) => (j.ocitool = { env: ['NOEQUALS'] })));
    await expectRefused(['--app', badEnv], 2, `"ocitool".env "NOEQUALS": expected KEY=VALUE`);
    await expectRefused(['--app', app, '--workdir', 'srv'], 2, `the working directory "srv" must be an absolute path`);
    await expectRefused(['--app', join(work, 'nowhere')], 1, `${join(work, 'nowhere', 'package.json')}: no such file`);
  }, 60_000);
});

describe('build --app, run by buildah', () => {
  it('on a base holding this host node and its libraries, the app prints what its dependencies return', async () => {
    // The base: node and what ldd says it loads, at their paths.
    const tree = join(work, 'node-root');
    await nodeRootTree(tree);
    const base = join(work, 'node-base');
    await ok(ocitool(['build', '-q', '--compression', 'none', '--add', `${tree}:/`, '--tag', `oci:${base}:v1`]));
    const out = join(work, 'runnable');
    await ok(ocitool(['build', '-q', '--app', app, '--from', `oci:${base}:v1`, '--user', '0:0', '--tag', `oci:${out}:v1`]));
    const storage = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
    const buildah = (args: string[]) => runTool('buildah', [...storage, ...args], { timeoutMs: 90_000 });
    const ctr = (await ok(buildah(['from', '--pull-never', `oci:${out}:v1`]))).trim();
    try {
      const printed = await ok(buildah(['run', '--isolation', 'chroot', ctr, '--', process.execPath, '/app/index.js']));
      expect(printed.trim()).toBe('hello ms=2m nested=2s sorted=ab env=production express=ok');
    } finally {
      await buildah(['rm', ctr]);
    }
  }, 180_000);
});
