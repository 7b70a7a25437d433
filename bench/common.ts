/** Helpers shared by the benchmark sections: timed runs of commands, the CLI with its peak RSS, medians. */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);

export interface Timed {
  seconds: number;
  maxRssKiB?: number;
  stdout: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
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

/**
 * NODE_EXTRA_CA_CERTS makes Node read and parse that bundle when it starts, before any of ocitool's
 * code (~70 ms on these machines, which point it at the whole system store). It is this machine's
 * setting, not a default of Node's or of CI runners; the benchmark runs ocitool without it (skopeo
 * never reads it).
 */
const BENCH_ENV: NodeJS.ProcessEnv = { NODE_EXTRA_CA_CERTS: undefined };

/**
 * Runs bin/ocitool as a user does (the launcher, its code cache), with a preloaded hook that reports
 * peak RSS (KiB) on stderr as the process exits.
 */
export function ocitool(args: string[], env?: NodeJS.ProcessEnv): Promise<Timed> {
  return run(process.execPath, ['--require', join(ROOT, 'bench', 'rss-report.cjs'), join(ROOT, 'bin', 'ocitool'), ...args], { env: { ...BENCH_ENV, ...env } });
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function measure(name: string, prepare: (i: number) => Promise<void>, go: (i: number) => Promise<Timed>): Promise<{ name: string; seconds: number; maxRssKiB?: number }> {
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

export function treeSize(dir: string): string {
  return execFileSync('du', ['-sh', dir]).toString().split('\t')[0] + `, ${execFileSync('sh', ['-c', `find "${dir}" | wc -l`]).toString().trim()} entries`;
}

/** Reads a whole tree once so every contender starts with a warm page cache (GNU tar skips reading
 * file data when writing to /dev/null, hence the pipe). */
export function warm(tree: string): void {
  execFileSync('bash', ['-c', `tar -C "${tree}" -cf - . | cat > /dev/null`]);
}

/** Size of the largest blob in a layout (the layer). */
export function largestBlob(layout: string): number {
  const out = execFileSync('bash', ['-c', `ls -l "${layout}/blobs/sha256" | awk '{print $5}' | sort -n | tail -1`]).toString().trim();
  return Number(out);
}

