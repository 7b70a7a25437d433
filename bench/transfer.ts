/**
 * The registry benchmark: push and pull of a ~700 MB multi-layer image to and from a fresh local
 * registry (Debian's distribution, no auth, on loopback), ocitool against `skopeo copy`, interleaved
 * run by run so that both see the same machine. Each run gets a registry of its own (nothing already
 * stored) and an empty blob-location cache (no cross-repository mounts).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPEAT, ROOT, median, ocitool, run, type Timed } from './common.js';
// The tests' launcher: Debian's distribution on a random loopback port (no auth here).
import { startRegistry } from '../test/helpers/registry.js';

export interface BenchImage {
  layout: string;
  ref: string;
  layers: number;
  blobBytes: number;
}

/** Writes `bytes` of incompressible data to `file`, 8 MiB at a time. */
async function randomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  for (let left = bytes; left > 0; left -= 8 << 20) {
    if (!out.write(randomBytes(Math.min(left, 8 << 20)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/**
 * A ~700 MB image (compressed blob bytes) of 7 layers: /usr/share/locale, doc and man (real,
 * compressible content) and four layers of 140 MB of random bytes. Built once per bench run with
 * ocitool build (gzip); also the input of the unpack benchmark.
 */
export async function benchImage(work: string): Promise<BenchImage> {
  const layout = join(work, 'image');
  const ref = `oci:${layout}:bench`;
  if (!existsSync(join(layout, 'index.json'))) {
    process.stderr.write('transfer: building the ~700 MB benchmark image…\n');
    const adds: string[] = [];
    for (const d of ['locale', 'doc', 'man']) if (existsSync(`/usr/share/${d}`)) adds.push('--add', `/usr/share/${d}:/usr/share/${d}`);
    for (let i = 0; i < 4; i++) {
      const dir = join(work, `random-${i}`);
      await mkdir(dir, { recursive: true });
      await randomFile(join(dir, 'data.bin'), 140_000_000);
      adds.push('--add', `${dir}:/data/${i}`);
    }
    await ocitool(['build', '--tag', ref, ...adds, '-q'], { SOURCE_DATE_EPOCH: '1700000000' });
    for (let i = 0; i < 4; i++) await rm(join(work, `random-${i}`), { recursive: true, force: true });
  }
  const blobs = join(layout, 'blobs', 'sha256');
  let blobBytes = 0;
  for (const name of await readdir(blobs)) blobBytes += (await stat(join(blobs, name))).size;
  const manifest = JSON.parse(execFileSync(join(ROOT, 'bin/ocitool'), ['inspect', ref]).toString()) as { layers: unknown[] };
  return { layout, ref, layers: manifest.layers.length, blobBytes };
}

interface Pair {
  ours: number[];
  theirs: number[];
  rssKiB: number;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(0)} MB`;

export async function benchTransfer(work: string): Promise<string[]> {
  for (const cmd of ['docker-registry', 'skopeo']) execFileSync('sh', ['-c', `command -v ${cmd}`]);
  const img = await benchImage(work);
  process.stderr.write(`transfer: ${img.layers} layers, ${mb(img.blobBytes)} of blobs\n`);
  // Every run writes into new directories, all removed only at the end: on this machine's ext4
  // (mounted with discard), writing right after a large deletion costs several times more kernel time,
  // which would land on whichever tool runs next.
  const made: string[] = [];
  const fresh = (what: string): string => {
    const dir = join(work, `${what}-${made.length}`);
    made.push(dir);
    return dir;
  };
  let out = '';
  const push: Pair = { ours: [], theirs: [], rssKiB: 0 };
  const pull: Pair = { ours: [], theirs: [], rssKiB: 0 };
  const skopeoCopy = (src: string, dst: string): Promise<Timed> => run('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', src, dst]);
  const withRegistry = async <T>(fn: (host: string) => Promise<T>): Promise<T> => {
    const reg = await startRegistry({ storage: fresh('registry') });
    try {
      return await fn(reg.host);
    } finally {
      await reg.stop();
    }
  };
  const freshCache = async (): Promise<NodeJS.ProcessEnv> => ({ OCITOOL_CACHE_DIR: await mkdtemp(join(work, 'cache-')) });
  // Dirty pages left by the previous step (the registry storing an image, a layout just written) are
  // flushed before every timed run, so that no contender pays for another's writeback; and the order
  // alternates run by run.
  const settle = (): void => void execFileSync('sync');
  const oursPush = async (): Promise<void> => {
    const t = await withRegistry(async (host) => {
      const env = await freshCache();
      settle();
      return ocitool(['push', '-q', img.ref, `docker://${host}/bench/img:1`], env);
    });
    push.ours.push(t.seconds);
    push.rssKiB = Math.max(push.rssKiB, t.maxRssKiB ?? 0);
  };
  const theirPush = async (): Promise<void> => {
    const t = await withRegistry(async (host) => {
      settle();
      return skopeoCopy(img.ref, `docker://${host}/bench/img:1`);
    });
    push.theirs.push(t.seconds);
  };
  const oursPull = async (host: string): Promise<void> => {
    out = fresh('pulled');
    const env = await freshCache();
    settle();
    const o = await ocitool(['pull', '-q', `docker://${host}/bench/img:1`, `oci:${out}:1`], env);
    pull.ours.push(o.seconds);
    pull.rssKiB = Math.max(pull.rssKiB, o.maxRssKiB ?? 0);
    const expected = o.stdout.trim().split('\n').pop();
    const got = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/bench/img:1`]).toString()) as { Digest: string };
    if (expected !== got.Digest) throw new Error(`ocitool pulled ${expected}, the registry has ${got.Digest}`);
  };
  const theirPull = async (host: string): Promise<void> => {
    out = fresh('pulled');
    settle();
    pull.theirs.push((await skopeoCopy(`docker://${host}/bench/img:1`, `oci:${out}:1`)).seconds);
  };
  for (let i = 0; i < REPEAT; i++) {
    const oursFirst = i % 2 === 0;
    for (const step of oursFirst ? [oursPush, theirPush] : [theirPush, oursPush]) await step();
    // Pull: from a registry skopeo filled, into an empty layout each time.
    await withRegistry(async (host) => {
      await skopeoCopy(img.ref, `docker://${host}/bench/img:1`);
      for (const step of oursFirst ? [oursPull, theirPull] : [theirPull, oursPull]) await step(host);
    });
    process.stderr.write(`  run ${i + 1}: push ${push.ours.at(-1)!.toFixed(2)} s vs skopeo ${push.theirs.at(-1)!.toFixed(2)} s; pull ${pull.ours.at(-1)!.toFixed(2)} s vs skopeo ${pull.theirs.at(-1)!.toFixed(2)} s\n`);
  }
  for (const d of made) await rm(d, { recursive: true, force: true });
  const line = (what: string, p: Pair): string[] => {
    const o = median(p.ours);
    const t = median(p.theirs);
    return [
      `${what} ${mb(img.blobBytes)} (${img.layers} layers): ocitool ${o.toFixed(2)} s (${(img.blobBytes / 1e6 / o).toFixed(0)} MB/s, peak RSS ${(p.rssKiB / 1024).toFixed(0)} MiB), skopeo copy ${t.toFixed(2)} s`,
      `  ratio ocitool/skopeo = ${(o / t).toFixed(2)} (goal <= 0.9); runs: ocitool ${p.ours.map((x) => x.toFixed(2)).join(', ')}; skopeo ${p.theirs.map((x) => x.toFixed(2)).join(', ')}`,
    ];
  };
  return [...line('push', push), ...line('pull', pull)];
}
