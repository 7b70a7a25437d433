/**
 * The unpack benchmark: the ~700 MB image of the transfer section unpacked into a root filesystem,
 * ocitool unpack (with its state file) against `umoci unpack --rootless` (with its mtree), runs
 * interleaved, each into a new directory with the disk synced first. Outputs are removed only after
 * all runs: on this machine's ext4 (mounted with discard), creating files right after a large deletion
 * costs several times more kernel time, which would land on whichever tool runs next. Twice: with the
 * root filesystem on the work disk, and on tmpfs (/dev/shm), where only the CPU work differs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPEAT, median, ocitool, run, type Timed } from './common.js';
import { benchImage } from './transfer.js';

interface Pair {
  ours: number[];
  theirs: number[];
  rssKiB: number;
}

export async function benchUnpack(work: string): Promise<string[]> {
  execFileSync('sh', ['-c', 'command -v umoci']);
  const img = await benchImage(work);
  const places: [string, string][] = [['disk', work]];
  if (existsSync('/dev/shm')) places.push(['tmpfs', '/dev/shm']);
  const lines: string[] = [];
  for (const [label, base] of places) {
    const p: Pair = { ours: [], theirs: [], rssKiB: 0 };
    const made: string[] = [];
    const clean = async (): Promise<void> => {
      for (const d of made.splice(0)) await rm(d, { recursive: true, force: true });
    };
    const fresh = async (what: string): Promise<string> => {
      // tmpfs frees at once and costs nothing to refill, while a pile of copies there eats the RAM
      // that caches the image: only the disk keeps outputs to the end.
      if (label === 'tmpfs') await clean();
      const dir = join(base, `ocitool-bench-${what}-${made.length}`);
      made.push(dir, `${dir}.ocitool-state.json`);
      await rm(dir, { recursive: true, force: true });
      execFileSync('sync');
      await sleep(1000);
      return dir;
    };
    const oursRun = async (): Promise<void> => {
      const t: Timed = await ocitool(['unpack', '-q', img.ref, await fresh('rootfs')]);
      p.ours.push(t.seconds);
      p.rssKiB = Math.max(p.rssKiB, t.maxRssKiB ?? 0);
    };
    const theirRun = async (): Promise<void> => {
      p.theirs.push((await run('umoci', ['unpack', '--rootless', '--image', `${img.layout}:bench`, await fresh('bundle')])).seconds);
    };
    for (let i = 0; i < REPEAT; i++) {
      for (const step of i % 2 === 0 ? [oursRun, theirRun] : [theirRun, oursRun]) await step();
      process.stderr.write(`  unpack (${label}) run ${i + 1}: ocitool ${p.ours.at(-1)!.toFixed(2)} s vs umoci ${p.theirs.at(-1)!.toFixed(2)} s\n`);
    }
    await clean();
    const o = median(p.ours);
    const t = median(p.theirs);
    lines.push(
      `unpack ${(img.blobBytes / 1e6).toFixed(0)} MB (${img.layers} layers) onto ${label}: ocitool ${o.toFixed(2)} s (peak RSS ${(p.rssKiB / 1024).toFixed(0)} MiB), umoci unpack --rootless ${t.toFixed(2)} s`,
      `  ratio ocitool/umoci = ${(o / t).toFixed(2)} (goal <= 0.5); runs: ocitool ${p.ours.map((x) => x.toFixed(2)).join(', ')}; umoci ${p.theirs.map((x) => x.toFixed(2)).join(', ')}`,
    );
  }
  return lines;
}
