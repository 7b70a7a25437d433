/**
 * `build --app` end to end through the real registry: the fixture app (testdata/app, installed with
 * npm ci) built onto a base holding this host's node and its libraries that lives in the registry,
 * pushed there, pulled back by buildah and run as its config says (entrypoint, working directory)
 * with chroot isolation. A warm rebuild after a one-line change of the app changes only the app
 * layer, and runs too. The registry's own request log shows that ocitool never downloaded a base
 * layer (mounted, never fetched), and that the counter sees one when buildah pulls.
 */
import { randomBytes } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ocitool } from './helpers/cli.js';
import { nodeRootTree } from './helpers/node-root.js';
import { startRegistry, type RegistryRequest, type TestRegistry } from './helpers/registry.js';
import { ok, runTool, skopeo } from './helpers/tools.js';

const PRINTED = 'ms=2m nested=2s sorted=ab env=production express=ok';

let work: string;
let app: string;
let reg: TestRegistry;
let baseLayers: string[];
let storage: string[];

const buildah = (args: string[]) => runTool('buildah', [...storage, ...args], { timeoutMs: 120_000 });

/** Layer digests of a pushed image, as skopeo reads them from the registry. */
async function pushedLayers(image: string): Promise<string[]> {
  return (JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/${image}`]))) as { Layers: string[] }).Layers;
}

/** Runs `go`; the requests the registry answered meanwhile. */
async function during(go: () => Promise<unknown>): Promise<RegistryRequest[]> {
  const before = (await reg.requests()).length;
  await go();
  return (await reg.requests()).slice(before);
}

/** How many times the registry served a base layer (GET of its digest, any repository). */
const baseGets = (rs: RegistryRequest[]): number => rs.filter((r) => r.method === 'GET' && baseLayers.some((d) => r.uri.endsWith(`/blobs/${d}`))).length;

/** buildah pulls IMAGE from the registry and runs its entrypoint and cmd, in its working directory, as the config records them. */
async function runPulled(image: string): Promise<string> {
  const ctr = (await ok(buildah(['from', '--tls-verify=false', `docker://${reg.host}/${image}`]))).trim();
  try {
    const info = JSON.parse(await ok(buildah(['inspect', '--type', 'container', ctr]))) as { OCIv1: { config: { Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string } } };
    const c = info.OCIv1.config;
    expect(c.Entrypoint).toEqual(['node', 'index.js']);
    expect(c.WorkingDir).toBe('/app');
    const argv = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
    return (await ok(buildah(['run', '--isolation', 'chroot', '--workingdir', c.WorkingDir!, ctr, '--', ...argv]))).trim();
  } finally {
    await buildah(['rm', ctr]);
  }
}

beforeAll(async () => {
  // Lower case: buildah names images after their path.
  work = join(tmpdir(), `ocitool-app-run-${randomBytes(6).toString('hex')}`);
  app = join(work, 'app');
  process.env.OCITOOL_CACHE_DIR = join(work, 'cache'); // the layer cache of every build here (never the home folder's)
  storage = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  await cp(join(ROOT, 'testdata/app'), app, { recursive: true });
  await ok(runTool('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 90_000 }));
  reg = await startRegistry({ recordRequests: true });
  // The base: this host's node and what ldd says it loads, at their paths, with a PATH to find node.
  const tree = join(work, 'node-root');
  await nodeRootTree(tree);
  await ok(ocitool(['build', '-q', '--compression', 'none', '--add', `${tree}:/`, '--env', `PATH=${dirname(process.execPath)}:/usr/bin:/bin`, '--tag', `docker://${reg.host}/base:v1`]));
  baseLayers = await pushedLayers('base:v1');
  expect(baseLayers).toHaveLength(1);
}, 180_000);
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('build --app, pushed to the registry and run by buildah', () => {
  it('runs as its config says; a warm rebuild after a one-line change differs in the app layer only and runs too; no base layer is downloaded', async () => {
    const build = (tag: string) => ok(ocitool(['build', '-q', '--app', app, '--from', `docker://${reg.host}/base:v1`, '--tag', `docker://${reg.host}/app:${tag}`, '--user', '0:0']));
    const coldRequests = await during(() => build('v1'));
    expect(baseGets(coldRequests)).toBe(0);
    const cold = await pushedLayers('app:v1');
    expect(cold).toHaveLength(3);
    expect(cold[0]).toBe(baseLayers[0]);

    // buildah's pull fetches the base layer: the counter sees it when it happens.
    let printed = '';
    expect(baseGets(await during(async () => (printed = await runPulled('app:v1'))))).toBeGreaterThan(0);
    expect(printed).toBe(`hello ${PRINTED}`);

    // One line changed in place; the same cache (OCITOOL_CACHE_DIR) and repository, a new tag.
    const greet = join(app, 'lib/greet.js');
    const before = await readFile(greet, 'utf8');
    const after = before.replace("process.env.GREETING ?? 'hi'", "`${process.env.GREETING ?? 'hi'} again`");
    expect(after).not.toBe(before);
    await writeFile(greet, after);
    const started = Date.now();
    const warmRequests = await during(() => build('v2'));
    expect(baseGets(warmRequests)).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    const warm = await pushedLayers('app:v2');
    expect(warm).toHaveLength(3);
    expect(warm.slice(0, 2)).toEqual(cold.slice(0, 2)); // the base layer, the dependency layer
    expect(warm[2]).not.toBe(cold[2]);
    // The cached dependency layer was found in the repository, not uploaded again (the cold build did upload it).
    const uploadsOf = (rs: RegistryRequest[], digest: string): number => rs.filter((r) => r.method === 'PUT' && decodeURIComponent(r.uri).includes(`digest=${digest}`)).length;
    expect(uploadsOf(coldRequests, cold[1]!)).toBe(1);
    expect(uploadsOf(warmRequests, cold[1]!)).toBe(0);
    expect(await runPulled('app:v2')).toBe(`hello again ${PRINTED}`);
  }, 300_000);
});
