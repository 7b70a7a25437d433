/**
 * npm run bench: ocitool against the anchors (umoci, pigz) on the same inputs in the same run,
 * printed as wall-time ratios. Each measurement runs REPEAT times; the median counts.
 *
 *   build  ocitool build --add TREE  vs  umoci repack (same tree)  vs  tar | pigz -p2
 *          on a ~110 MB node_modules tree (bench/fixture, installed with npm ci --ignore-scripts)
 *          and on /usr/share; plus ocitool's peak RSS.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const only = process.argv.slice(2);

interface Timed {
  seconds: number;
  maxRssKiB?: number;
  stdout: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      const rss = /MAXRSS (\d+)/.exec(stderr);
      resolve({ seconds, stdout, ...(rss ? { maxRssKiB: Number(rss[1]) } : {}) });
    });
  });
}

/** Runs the built CLI in-process of a wrapper that reports peak RSS (KiB) on exit. */
function ocitool(args: string[], env?: NodeJS.ProcessEnv): Promise<Timed> {
  const wrapper = `const m = await import(${JSON.stringify(join(ROOT, 'dist/cli/main.js'))}); const code = await m.main(process.argv.slice(1)); process.stderr.write('MAXRSS ' + process.resourceUsage().maxRSS + '\\n'); process.exit(code);`;
  return run(process.execPath, ['--input-type=module', '-e', wrapper, ...args], env ? { env } : {});
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(name: string, prepare: (i: number) => Promise<void>, go: (i: number) => Promise<Timed>): Promise<{ name: string; seconds: number; maxRssKiB?: number }> {
  const times: number[] = [];
  let rss = 0;
  for (let i = 0; i < REPEAT; i++) {
    await prepare(i);
    const t = await go(i);
    times.push(t.seconds);
    rss = Math.max(rss, t.maxRssKiB ?? 0);
  }
  const s = median(times);
  process.stderr.write(`  ${name}: ${s.toFixed(2)} s (runs: ${times.map((x) => x.toFixed(2)).join(', ')})\n`);
  return rss ? { name, seconds: s, maxRssKiB: rss } : { name, seconds: s };
}

function treeSize(dir: string): string {
  return execFileSync('du', ['-sh', dir]).toString().split('\t')[0] + `, ${execFileSync('sh', ['-c', `find "${dir}" | wc -l`]).toString().trim()} entries`;
}

/** Reads a whole tree once so every contender starts with a warm page cache (GNU tar skips reading
 * file data when writing to /dev/null, hence the pipe). */
function warm(tree: string): void {
  execFileSync('bash', ['-c', `tar -C "${tree}" -cf - . | cat > /dev/null`]);
}

/** Size of the largest blob in a layout (the layer). */
function largestBlob(layout: string): number {
  const out = execFileSync('bash', ['-c', `ls -l "${layout}/blobs/sha256" | awk '{print $5}' | sort -n | tail -1`]).toString().trim();
  return Number(out);
}

async function nodeModulesTree(): Promise<string> {
  const fixture = join(ROOT, 'bench', 'fixture');
  if (!existsSync(join(fixture, 'node_modules'))) {
    process.stderr.write('installing the benchmark node_modules tree (npm ci --ignore-scripts)…\n');
    execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: fixture, stdio: 'inherit' });
  }
  return join(fixture, 'node_modules');
}

async function benchBuild(tree: string, label: string, work: string): Promise<string[]> {
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

async function main(): Promise<void> {
  const want = (s: string): boolean => only.length === 0 || only.includes(s);
  for (const cmd of ['umoci', 'pigz', 'tar']) execFileSync('sh', ['-c', `command -v ${cmd}`]);
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  const work = await mkdtemp(join(tmpdir(), 'ocitool-bench-'));
  const lines: string[] = [];
  try {
    if (want('build')) {
      await mkdir(work, { recursive: true });
      lines.push(...(await benchBuild(await nodeModulesTree(), 'node_modules', work)));
      lines.push(...(await benchBuild('/usr/share', '/usr/share', work)));
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`\nocitool benchmark (${REPEAT} runs each, median; ${new Date().toISOString()})\n${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
