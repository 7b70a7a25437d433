/**
 * `build --app` of bench/app-fixture (~140 MB of production dependencies, dev dependencies that must
 * stay out, a few app files) onto the registry base, against containerify 4.1 on the same app:
 *
 *   cold  ocitool with an empty OCITOOL_CACHE_DIR into ours-app-I/app:v1; containerify into
 *         theirs-app-I/app:v1, --folder a copy of the app pruned of its dev dependencies (what a
 *         containerify user runs first: it packs node_modules whole);
 *   warm  one line of lib/format.js changed in place, then the same builds into the same
 *         repositories as tag v2, ocitool with the cold run's cache. Same repository, new tag: that is
 *         what CI does for each commit, and the registry there holds the unchanged dependency layer for
 *         both tools (containerify's layers are reproducible too: it finds its own and skips the
 *         upload), so each pays only for what it does again; containerify has no cache, its time for
 *         the changed app is the anchor.
 *
 * Both run on copies of bench/app-fixture in the work folder. Each run is checked: the pushed image holds the base layers and two more, the warm one shares the
 * cold one's dependency layer and not its app layer; the last warm image is copied whole by skopeo
 * (every blob fetched and its digest checked).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPEAT, ROOT, median, ocitool, run, warm, type Timed } from './common.js';
import type { AppBench } from './app.js';

const CHANGED_FILE = 'lib/format.js';

/** bench/app-fixture with its dependencies installed (npm ci --ignore-scripts on first use). */
function appFixture(): string {
  const dir = join(ROOT, 'bench', 'app-fixture');
  if (!existsSync(join(dir, 'node_modules'))) {
    process.stderr.write('installing the benchmark app (bench/app-fixture: npm ci --ignore-scripts)…\n');
    execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
  }
  return dir;
}

/** Bytes of the lockfile's installed packages, production and dev (each folder without its nested node_modules). */
async function dependencyBytes(dir: string): Promise<{ prod: number; dev: number; packages: number }> {
  const lock = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const size = async (p: string, top: boolean): Promise<number> => {
    let n = 0;
    for (const e of await readdir(p, { withFileTypes: true })) {
      if (top && e.name === 'node_modules') continue;
      n += e.isDirectory() ? await size(join(p, e.name), false) : e.isFile() ? (await stat(join(p, e.name))).size : 0;
    }
    return n;
  };
  const out = { prod: 0, dev: 0, packages: 0 };
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (path === '' || !existsSync(join(dir, path))) continue;
    const n = await size(join(dir, path), true);
    if (meta.dev) out.dev += n;
    else {
      out.prod += n;
      out.packages++;
    }
  }
  return out;
}

/** The layer digests of a pushed image, as skopeo (an independent reader) sees them. */
function pushedLayers(b: AppBench, image: string): string[] {
  const out = execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${b.reg.host}/${image}`]).toString();
  return (JSON.parse(out) as { Layers: string[] }).Layers;
}

/** Checks a pushed --app image: the base's layers, then a dependency and an app layer; returns those two. */
function checkPushed(b: AppBench, image: string): { deps: string; app: string } {
  const layers = pushedLayers(b, image);
  const base = b.baseLayers.map((l) => l.digest);
  if (layers.length !== base.length + 2 || base.some((d, i) => layers[i] !== d)) throw new Error(`${image}: layers ${layers.join(' ')}, expected the base's ${base.join(' ')} and two more`);
  return { deps: layers[base.length]!, app: layers[base.length + 1]! };
}

const secs = (xs: number[]): string => `${median(xs).toFixed(2)} s (runs: ${xs.map((x) => x.toFixed(2)).join(', ')})`;

/**
 * Dirty pages the previous run left (containerify's download of the base, a cache written) are
 * flushed before every timed run, so that no contender pays for another's writeback.
 */
const settle = (): void => void execFileSync('sync');

export async function benchAppCases(b: AppBench): Promise<string[]> {
  const fixture = appFixture();
  const sizes = await dependencyBytes(fixture);
  // Copies the runs change (bench/app-fixture stays as committed): ours, and containerify's with the
  // dev dependencies pruned (npm prune works offline).
  const app = join(b.work, 'app');
  const pruned = join(b.work, 'app-pruned');
  for (const d of [app, pruned]) {
    await rm(d, { recursive: true, force: true });
    await cp(fixture, d, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  }
  execFileSync('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: pruned, stdio: 'inherit' });
  const original = await readFile(join(app, CHANGED_FILE), 'utf8');
  if (!original.includes("const PREFIX = 'bench-app';")) throw new Error(`${CHANGED_FILE}: the line the warm case changes is not there`);
  // In place (no rename): the edit changes the file, not the folders holding it.
  const edit = (i: number): Promise<void[]> => Promise.all([app, pruned].map((d) => writeFile(join(d, CHANGED_FILE), original.replace("'bench-app'", `'bench-app-${i + 1}'`))));
  const restore = (): Promise<void[]> => Promise.all([app, pruned].map((d) => writeFile(join(d, CHANGED_FILE), original)));
  warm(app);
  warm(pruned);
  process.stderr.write(`app --app: bench/app-fixture, ${(sizes.prod / 1e6).toFixed(0)} MB of production dependencies (${sizes.packages} packages), ${(sizes.dev / 1e6).toFixed(0)} MB of dev ones left out\n`);

  const t = { oursCold: [] as number[], oursWarm: [] as number[], theirsCold: [] as number[], theirsWarm: [] as number[] };
  const rss = { cold: 0, warm: 0 };
  const downloaded = { ours: 0, theirs: 0 };
  let lastWarm = '';
  const ours = async (i: number, tag: string, phase: 'cold' | 'warm'): Promise<void> => {
    const cache = join(b.work, `app-cache-${i}`);
    if (phase === 'cold') await rm(cache, { recursive: true, force: true });
    const image = `ours-app-${i}/app:${tag}`;
    settle();
    const { result, bytes } = await b.baseDownloads(() => ocitool(['build', '-q', '--insecure', '--app', app, '--from', `docker://${b.reg.host}/base:v1`, '--tag', `docker://${b.reg.host}/${image}`], { OCITOOL_CACHE_DIR: cache }));
    (phase === 'cold' ? t.oursCold : t.oursWarm).push(result.seconds);
    rss[phase] = Math.max(rss[phase], result.maxRssKiB ?? 0);
    downloaded.ours += bytes;
    if (phase === 'warm') {
      const cold = checkPushed(b, `ours-app-${i}/app:v1`);
      const now = checkPushed(b, image);
      if (now.deps !== cold.deps || now.app === cold.app) throw new Error(`${image}: dependency layer ${now.deps} (cold ${cold.deps}), app layer ${now.app} (cold ${cold.app}): only the app layer should change`);
      lastWarm = image;
    }
  };
  const theirs = async (i: number, tag: string, phase: 'cold' | 'warm'): Promise<void> => {
    settle();
    const { result, bytes }: { result: Timed; bytes: number } = await b.baseDownloads(() => b.containerify(pruned, `theirs-app-${i}/app:${tag}`));
    (phase === 'cold' ? t.theirsCold : t.theirsWarm).push(result.seconds);
    downloaded.theirs += bytes;
  };
  for (let i = 0; i < REPEAT; i++) {
    const order = i % 2 === 0 ? [ours, theirs] : [theirs, ours];
    for (const go of order) await go(i, 'v1', 'cold');
    await edit(i);
    for (const go of order) await go(i, 'v2', 'warm');
    await restore();
  }
  // The last warm image whole: skopeo fetches every blob of it and checks its digest.
  const check = join(b.work, 'app-check');
  await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${b.reg.host}/${lastWarm}`, `oci:${check}:v2`]);
  await rm(check, { recursive: true, force: true });

  const [oc, ow, cc, cw] = [median(t.oursCold), median(t.oursWarm), median(t.theirsCold), median(t.theirsWarm)];
  process.stderr.write(`  --app cold: ocitool ${secs(t.oursCold)}, containerify ${secs(t.theirsCold)}\n  --app warm: ocitool ${secs(t.oursWarm)}, containerify ${secs(t.theirsWarm)}\n`);
  const mib = (k: number): string => `${(k / 1024).toFixed(0)} MiB`;
  return [
    `app --app: build + push of bench/app-fixture (${(sizes.prod / 1e6).toFixed(0)} MB of production dependencies in ${sizes.packages} packages; ${(sizes.dev / 1e6).toFixed(0)} MB of dev ones left out) onto the registry base`,
    `  cold (empty cache): ocitool ${secs(t.oursCold)}, containerify 4.1 ${secs(t.theirsCold)}: ratio ${(oc / cc).toFixed(3)} (goal <= 0.15)`,
    `  warm (one line of ${CHANGED_FILE} changed, the cold run's cache, tag v2 in the same repository): ocitool ${secs(t.oursWarm)}, containerify ${secs(t.theirsWarm)}`,
    `    ratio to our cold build ${(ow / oc).toFixed(3)} (goal <= 0.25), to containerify's ${(ow / cw).toFixed(3)} (goal <= 0.05)`,
    `  ocitool peak RSS cold ${mib(rss.cold)}, warm ${mib(rss.warm)}; base-layer bytes downloaded: ocitool ${downloaded.ours}, containerify ${downloaded.theirs}`,
    `  each pushed image: base layers + dependency + app layer (skopeo inspect), warm = cold's dependency layer and a new app layer; ${lastWarm} copied whole by skopeo`,
  ];
}
