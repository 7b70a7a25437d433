/** The build benchmark: ocitool build vs umoci repack vs tar | pigz on the same trees. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, largestBlob, measure, ocitool, run, treeSize, warm } from './common.js';

export async function nodeModulesTree(): Promise<string> {
  const fixture = join(ROOT, 'bench', 'fixture');
  if (!existsSync(join(fixture, 'node_modules'))) {
    process.stderr.write('installing the benchmark node_modules tree (npm ci --ignore-scripts)…\n');
    execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: fixture, stdio: 'inherit' });
  }
  return join(fixture, 'node_modules');
}

export async function benchBuild(tree: string, label: string, work: string): Promise<string[]> {
  process.stderr.write(`build: ${label} (${treeSize(tree)})\n`);
  warm(tree);
  const layout = join(work, 'oci');
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const ours = await measure('ocitool build', () => rm(layout, { recursive: true, force: true }), () => ocitool(['build', '--tag', `oci:${layout}:bench`, '--add', tree, '-q'], env));
  const oursSize = largestBlob(layout);
  const fast = await measure('ocitool build --compression-level 4', () => rm(layout, { recursive: true, force: true }), () => ocitool(['build', '--tag', `oci:${layout}:bench`, '--add', tree, '-q', '--compression-level', '4'], env));
  const fastSize = largestBlob(layout);
  // umoci repack: the tree copied into an unpacked empty image's rootfs, then repacked as one layer.
  const ul = join(work, 'umoci');
  const bundle = join(work, 'bundle');
  const umoci = await measure(
    'umoci repack',
    async () => {
      await rm(ul, { recursive: true, force: true });
      await rm(bundle, { recursive: true, force: true });
      execFileSync('umoci', ['init', '--layout', ul]);
      execFileSync('umoci', ['new', '--image', `${ul}:base`]);
      execFileSync('umoci', ['unpack', '--image', `${ul}:base`, bundle]);
      await cp(tree, join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
      warm(join(bundle, 'rootfs'));
    },
    () => run('umoci', ['repack', '--image', `${ul}:new`, bundle]),
  );
  const umociSize = largestBlob(ul);
  const pigz = await measure('tar | pigz -p2', async () => undefined, () => run('bash', ['-c', `set -o pipefail; tar -C "${tree}" -cf - . | pigz -p2 -6 > "${join(work, 'out.tgz')}"`]));
  const rss = ours.maxRssKiB ? `${(ours.maxRssKiB / 1024).toFixed(0)} MiB` : 'n/a';
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  return [
    `build ${label}: ocitool ${ours.seconds.toFixed(2)} s (layer ${mb(oursSize)}), umoci repack ${umoci.seconds.toFixed(2)} s (layer ${mb(umociSize)}), tar|pigz -p2 ${pigz.seconds.toFixed(2)} s`,
    `  ratio ocitool/umoci-repack = ${(ours.seconds / umoci.seconds).toFixed(2)} (goal <= 0.75), ocitool/pigz = ${(ours.seconds / pigz.seconds).toFixed(2)}, ocitool peak RSS ${rss} (goal <= 200 MiB)`,
    `  at --compression-level 4: ${fast.seconds.toFixed(2)} s, layer ${mb(fastSize)}, ratio to umoci repack = ${(fast.seconds / umoci.seconds).toFixed(2)}`,
  ];
}

