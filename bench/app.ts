/**
 * The app benchmark, ocitool against containerify 4.1 (the Node peer), onto a base image that lives
 * in a registry this section starts, each run into a repository of its own, interleaved run by run:
 *
 *   --add   `build --add bench/fixture/node_modules` (~110 MB) against containerify --folder bench/fixture;
 *   --app   `build --app bench/app-fixture` (~140 MB of production dependencies, dev ones left out):
 *           cold (an empty OCITOOL_CACHE_DIR) and warm (one line of an app file changed, the cold
 *           run's cache) against containerify on the same app, pruned of its dev dependencies.
 *
 * ocitool reads only the base's manifest and config and mounts its layers: the base-layer bytes each
 * tool downloads are counted from the registry's own request log (the goal is zero for ocitool).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { REPEAT, ROOT, median, ocitool, run, type Timed } from './common.js';
import { nodeModulesTree } from './build.js';
import { benchAppCases } from './app-cases.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';

/**
 * A tool from bench/anchors (containerify), installed there on first use: it is the benchmark's
 * anchor, not a dependency of ocitool (and containerify 4.1 declares node >= 22, which npm ci of the
 * project would warn about; it runs on Node 20).
 */
function anchorBin(name: string): string {
  const dir = join(ROOT, 'bench', 'anchors');
  const bin = join(dir, 'node_modules', '.bin', name);
  if (!existsSync(bin)) {
    process.stderr.write(`installing the benchmark's anchors in bench/anchors (${name})…\n`);
    execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: 'inherit' });
  }
  return bin;
}

/** What the app cases share: the registry, its base image, the anchor and the download counter. */
export interface AppBench {
  reg: TestRegistry;
  work: string;
  baseLayers: { digest: string; size: number }[];
  /** containerify --folder DIR from the base into REPO:TAG of the registry (a build folder of its own). */
  containerify(dir: string, image: string): Promise<Timed>;
  /** Runs `go`; the base-layer bytes the registry served meanwhile (GET of a base blob's digest, any repository). */
  baseDownloads<T>(go: () => Promise<T>): Promise<{ result: T; bytes: number }>;
}

export async function benchApp(work: string): Promise<string[]> {
  const reg = await startRegistry({ storage: join(work, 'app-registry'), recordRequests: true });
  try {
    // The base: /usr/share/doc and /usr/share/man as two layers (real, compressible content).
    const baseTrees: string[] = [];
    for (const d of ['doc', 'man']) if (existsSync(`/usr/share/${d}`)) baseTrees.push('--add', `/usr/share/${d}:/usr/share/${d}`);
    const baseLayout = join(work, 'app-base');
    await ocitool(['build', '-q', '--tag', `oci:${baseLayout}:base`, ...baseTrees], { SOURCE_DATE_EPOCH: '1700000000' });
    await ocitool(['copy', '-q', '--insecure', `oci:${baseLayout}:base`, `docker://${reg.host}/base:v1`]);
    // (Not through the wrapper: `node -e … inspect` would start node's debugger.)
    const baseLayers = (JSON.parse(execFileSync(join(ROOT, 'bin/ocitool'), ['inspect', `oci:${baseLayout}:base`]).toString()) as { layers: { digest: string; size: number }[] }).layers;
    const bin = anchorBin('containerify');
    const digests = new Set(baseLayers.map((l) => l.digest));
    const bench: AppBench = {
      reg,
      work,
      baseLayers,
      containerify: async (dir, image) => {
        const build = join(work, 'containerify-build');
        await rm(build, { recursive: true, force: true });
        await mkdir(build, { recursive: true });
        try {
          return await run(bin, ['--fromRegistry', `${reg.url}/v2/`, '--fromImage', 'base:v1', '--toRegistry', `${reg.url}/v2/`, '--toImage', image, '--folder', dir, '--buildFolder', build, '--doCrossMount', '--allowNoPushAuth', '--allowInsecureRegistries']);
        } finally {
          await rm(build, { recursive: true, force: true });
        }
      },
      baseDownloads: async (go) => {
        const before = (await reg.requests()).length;
        const result = await go();
        let bytes = 0;
        for (const r of (await reg.requests()).slice(before)) {
          const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(r.uri)?.[1];
          if (r.method === 'GET' && digest && digests.has(digest)) bytes += r.written;
        }
        return { result, bytes };
      },
    };
    const baseMB = (baseLayers.reduce((n, l) => n + l.size, 0) / 1e6).toFixed(0);
    process.stderr.write(`app: registry base ${baseMB} MB in ${baseLayers.length} layers\n`);
    return [...(await addCase(bench, baseMB)), ...(await benchAppCases(bench))];
  } finally {
    await reg.stop();
  }
}

/** `build --add bench/fixture/node_modules` against containerify --folder bench/fixture (issue 13's figure). */
async function addCase(b: AppBench, baseMB: string): Promise<string[]> {
  const app = dirname(await nodeModulesTree());
  const ours: number[] = [];
  const theirs: number[] = [];
  let rss = 0;
  let downloaded = 0;
  for (let i = 0; i < REPEAT; i++) {
    for (const who of i % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
      if (who === 'ours') {
        const { result: t, bytes } = await b.baseDownloads(() =>
          ocitool(['build', '-q', '--insecure', '--from', `docker://${b.reg.host}/base:v1`, '--tag', `docker://${b.reg.host}/ours-${i}/app:v1`, '--add', `${app}:/app`, '--workdir', '/app', '--entrypoint', 'node', '--cmd', 'index.js']),
        );
        ours.push(t.seconds);
        rss = Math.max(rss, t.maxRssKiB ?? 0);
        downloaded += bytes;
      } else {
        theirs.push((await b.containerify(app, `theirs-${i}/app:v1`)).seconds);
      }
    }
  }
  const o = median(ours);
  const c = median(theirs);
  process.stderr.write(`  --add: ocitool build+push ${o.toFixed(2)} s (runs: ${ours.map((x) => x.toFixed(2)).join(', ')})\n  --add: containerify ${c.toFixed(2)} s (runs: ${theirs.map((x) => x.toFixed(2)).join(', ')})\n`);
  return [
    `app --add: build + push of bench/fixture (~110 MB node_modules) onto a registry base (${baseMB} MB in ${b.baseLayers.length} layers)`,
    `  ocitool ${o.toFixed(2)} s, containerify 4.1 ${c.toFixed(2)} s: ratio ${(o / c).toFixed(2)}; ocitool peak RSS ${(rss / 1024).toFixed(0)} MiB; base-layer bytes ocitool downloaded: ${downloaded}`,
  ];
}
