/**
 * npm run bench: ocitool against the anchors (umoci, pigz) on the same inputs in the same run,
 * printed as wall-time ratios. Each measurement runs REPEAT times; the median counts.
 *
 *   build  ocitool build --add TREE  vs  umoci repack (same tree)  vs  tar | pigz -p2
 *          on a ~110 MB node_modules tree (bench/fixture, installed with npm ci --ignore-scripts)
 *          and on /usr/share; plus ocitool's peak RSS.
 *   transfer  ocitool push / pull  vs  skopeo copy, a ~700 MB 7-layer image to and from a fresh local
 *          registry (distribution, loopback); push of a one-layer ~240 MB image (/usr/share) to a fresh
 *          registry, and its copy from one registry to another; runs interleaved; plus peak RSS.
 *   convert  ocitool convert --compression gzip  vs  skopeo copy --dest-compress (layout to layout), and
 *          a gzip image to docker-archive: (decompressing every layer) with both; /usr/share/{doc,man,
 *          locale}, runs interleaved.
 *   unpack  ocitool unpack  vs  umoci unpack --rootless, the transfer section's image, root filesystem
 *          on the work disk and on tmpfs, runs interleaved.
 *
 *   app    ocitool build --from docker://R/base --tag docker://R/app  vs  containerify 4.1 onto a
 *          registry base, runs interleaved, base-layer bytes downloaded counted: --add of bench/fixture's
 *          node_modules; --app of bench/app-fixture (~140 MB of production dependencies), cold (empty
 *          cache) and warm (one app line changed, the cold run's cache); plus peak RSS.
 *
 *   sync   ocitool sync  vs  skopeo sync, one skopeo sync YAML file: 60 tags (40 images on a shared
 *          base) from one local registry to a fresh one, then each tool's rerun of the unchanged sync.
 *
 *   npm run bench                  every section
 *   npm run bench -- transfer      one section (BENCH_REPEAT=5 for more runs)
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPEAT, ROOT } from './common.js';
import { benchBuild, nodeModulesTree } from './build.js';
import { benchTransfer } from './transfer.js';
import { benchConvert } from './convert.js';
import { benchUnpack } from './unpack.js';
import { benchApp } from './app.js';
import { benchSync } from './sync.js';

const only = process.argv.slice(2);

async function main(): Promise<void> {
  const want = (s: string): boolean => only.length === 0 || only.includes(s);
  for (const cmd of ['umoci', 'pigz', 'tar', 'skopeo', 'docker-registry']) execFileSync('sh', ['-c', `command -v ${cmd}`]);
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const work = await mkdtemp(join(tmpdir(), 'ocitool-bench-'));
  const lines: string[] = [];
  try {
    if (want('build')) {
      await mkdir(work, { recursive: true });
      lines.push(...(await benchBuild(await nodeModulesTree(), 'node_modules', work)));
      lines.push(...(await benchBuild('/usr/share', '/usr/share', work)));
    }
    if (want('transfer')) lines.push(...(await benchTransfer(work)));
    if (want('convert')) lines.push(...(await benchConvert(work)));
    if (want('unpack')) lines.push(...(await benchUnpack(work)));
    if (want('app')) lines.push(...(await benchApp(work)));
    if (want('sync')) lines.push(...(await benchSync(work)));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`\nocitool benchmark (${REPEAT} runs each, median; ${new Date().toISOString()})\n${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
