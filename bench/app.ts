/**
 * The app benchmark: build and push of a Node.js app (bench/fixture: package.json and a ~110 MB
 * node_modules) onto a base image that lives in the registry, ocitool against containerify 4.1 (the
 * Node peer, a dev dependency), interleaved run by run, each run into a repository of its own.
 * ocitool reads only the base's manifest and config and mounts its layers; the base-layer bytes it
 * downloads are counted from the registry's request log (the goal is zero).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { REPEAT, ROOT, median, ocitool, run, type Timed } from './common.js';
import { nodeModulesTree } from './build.js';
import { startRegistry } from '../test/helpers/registry.js';

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

export async function benchApp(work: string): Promise<string[]> {
  const app = dirname(await nodeModulesTree());
  const reg = await startRegistry({ storage: join(work, 'app-registry') });
  try {
    // The base: /usr/share/doc and /usr/share/man as two layers (real, compressible content).
    const baseTrees: string[] = [];
    for (const d of ['doc', 'man']) if (existsSync(`/usr/share/${d}`)) baseTrees.push('--add', `/usr/share/${d}:/usr/share/${d}`);
    const baseLayout = join(work, 'app-base');
    await ocitool(['build', '-q', '--tag', `oci:${baseLayout}:base`, ...baseTrees], { SOURCE_DATE_EPOCH: '1700000000' });
    await ocitool(['copy', '-q', '--insecure', `oci:${baseLayout}:base`, `docker://${reg.host}/base:v1`]);
    // (Not through the wrapper: `node -e … inspect` would start node's debugger.)
    const baseLayers = (JSON.parse(execFileSync(join(ROOT, 'bin/ocitool'), ['inspect', `oci:${baseLayout}:base`]).toString()) as { layers: { digest: string; size: number }[] }).layers;
    const baseBytes = baseLayers.reduce((n, l) => n + l.size, 0);
    const containerify = anchorBin('containerify');
    const ours: number[] = [];
    const theirs: number[] = [];
    let rss = 0;
    let downloaded = 0;
    for (let i = 0; i < REPEAT; i++) {
      for (const who of i % 2 === 0 ? ['ours', 'theirs'] : ['theirs', 'ours']) {
        if (who === 'ours') {
          const before = reg.log().length;
          const t: Timed = await ocitool(['build', '-q', '--insecure', '--from', `docker://${reg.host}/base:v1`, '--tag', `docker://${reg.host}/ours-${i}/app:v1`, '--add', `${app}:/app`, '--workdir', '/app', '--entrypoint', 'node', '--cmd', 'index.js']);
          ours.push(t.seconds);
          rss = Math.max(rss, t.maxRssKiB ?? 0);
          // Base-layer blobs fetched: GET requests for their digests in the registry's log.
          const log = reg.log().slice(before);
          for (const l of baseLayers) if (new RegExp(`method=GET[^\\n]*/blobs/${l.digest}`).test(log)) downloaded += l.size;
        } else {
          const build = join(work, `containerify-${i}`);
          await rm(build, { recursive: true, force: true });
          await mkdir(build, { recursive: true });
          const t = await run(containerify, ['--fromRegistry', `${reg.url}/v2/`, '--fromImage', 'base:v1', '--toRegistry', `${reg.url}/v2/`, '--toImage', `theirs-${i}/app:v1`, '--folder', app, '--buildFolder', build, '--doCrossMount', '--allowNoPushAuth', '--allowInsecureRegistries']);
          theirs.push(t.seconds);
          await rm(build, { recursive: true, force: true });
        }
      }
    }
    const o = median(ours);
    const c = median(theirs);
    process.stderr.write(`  ocitool build+push: ${o.toFixed(2)} s (runs: ${ours.map((x) => x.toFixed(2)).join(', ')})\n  containerify: ${c.toFixed(2)} s (runs: ${theirs.map((x) => x.toFixed(2)).join(', ')})\n`);
    return [
      `app: build + push of bench/fixture (~110 MB node_modules) onto a registry base (${(baseBytes / 1e6).toFixed(0)} MB in ${baseLayers.length} layers)`,
      `  ocitool ${o.toFixed(2)} s, containerify 4.1 ${c.toFixed(2)} s: ratio ${(o / c).toFixed(2)}; ocitool peak RSS ${(rss / 1024).toFixed(0)} MiB; base-layer bytes ocitool downloaded: ${downloaded}`,
    ];
  } finally {
    await reg.stop();
  }
}
