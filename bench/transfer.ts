/**
 * The registry benchmark, ocitool against `skopeo copy` on Debian's distribution (no auth, loopback):
 * push and pull of a ~700 MB multi-layer image, push of a one-layer ~240 MB image, and a copy of that
 * image from one registry to another; interleaved run by run so that both see the same machine. Each
 * run gets a registry of its own (nothing already stored) and an empty blob-location cache (no
 * cross-repository mounts).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, statfs } from 'node:fs/promises';
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

interface OneLayer extends BenchImage {
  /** The layer's digest and its blob file. */
  layer: { digest: string; file: string };
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

/**
 * A one-layer image of ~240 MB (compressed): /usr/share in a single gzip layer, built once per bench
 * run with ocitool build. One large blob is where an upload that waits between chunks loses most.
 */
async function oneLayerImage(work: string): Promise<OneLayer> {
  const layout = join(work, 'one-layer');
  const ref = `oci:${layout}:bench`;
  if (!existsSync(join(layout, 'index.json'))) {
    process.stderr.write('transfer: building the one-layer image of /usr/share…\n');
    await ocitool(['build', '--tag', ref, '--add', '/usr/share:/usr/share', '-q'], { SOURCE_DATE_EPOCH: '1700000000' });
  }
  let blobBytes = 0;
  const blobs = join(layout, 'blobs', 'sha256');
  for (const name of await readdir(blobs)) blobBytes += (await stat(join(blobs, name))).size;
  const manifest = JSON.parse(execFileSync(join(ROOT, 'bin/ocitool'), ['inspect', ref]).toString()) as { layers: { digest: string }[] };
  const digest = manifest.layers[0]!.digest;
  return { layout, ref, layers: 1, blobBytes, layer: { digest, file: join(blobs, digest.slice('sha256:'.length)) } };
}

interface Pair {
  what: string;
  bytes: number;
  ours: number[];
  theirs: number[];
  /** The floor: curl moving the layer alone in one request each way (no client can do less). */
  floor: number[];
  rssKiB: number;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(0)} MB`;

/** A new folder on tmpfs (/dev/shm) when it has `bytes` free, else undefined. */
async function tmpfsDir(bytes: number): Promise<string | undefined> {
  try {
    const fs = await statfs('/dev/shm');
    if (fs.type !== TMPFS_MAGIC || fs.bavail * fs.bsize < bytes) return undefined;
    return await mkdtemp('/dev/shm/ocitool-bench-');
  } catch {
    return undefined;
  }
}
const TMPFS_MAGIC = 0x01021994;

/**
 * One medium's cases: the registries' storage and the pulled layouts under `where`, the disk or
 * tmpfs. `once(i)` runs each case once for each tool (the order alternating with i).
 */
function medium(label: string, where: string, img: BenchImage, one: OneLayer, work: string) {
  // On the disk, every run writes into new directories, all removed only at the end: on this
  // machine's ext4 (mounted with discard), writing right after a large deletion costs several times
  // more kernel time, which would land on whichever tool runs next. tmpfs has no such cost (and no
  // room to keep every run): there each run's directories go when it ends.
  const made: string[] = [];
  const fresh = (what: string): string => {
    const dir = join(where, `${what}-${made.length}`);
    made.push(dir);
    return dir;
  };
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
  // flushed before every timed run, so that no contender pays for another's writeback.
  const settle = (): void => void execFileSync('sync');
  const pair = (what: string, bytes: number): Pair => ({ what, bytes, ours: [], theirs: [], floor: [], rssKiB: 0 });
  /**
   * The least any client can do to move the one-layer image's layer: curl sends it in one monolithic
   * PUT (after the POST that opens the upload), reading from the layout, or streaming it from the
   * source registry's GET. No manifest, no existence checks: a lower bound set by the registry itself.
   */
  const curlFloor = async (p: Pair, host: string, from: { file: string } | { url: string }): Promise<void> => {
    const open = execFileSync('curl', ['-sS', '-i', '-X', 'POST', `http://${host}/v2/bench/floor/blobs/uploads/`]).toString();
    const location = /^location: *(\S+)/im.exec(open)?.[1];
    if (!location) throw new Error(`curl: no upload location from ${host}:\n${open}`);
    const target = new URL(location, `http://${host}`);
    target.searchParams.set('digest', one.layer.digest);
    const put = (file: string): string => `curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T '${file}' '${target.href}'`;
    const command = 'file' in from ? put(from.file) : `curl -sS -f '${from.url}' | ${put('-')}`;
    settle();
    p.floor.push((await run('bash', ['-o', 'pipefail', '-c', command])).seconds);
  };
  const ours = (p: Pair, t: Timed): void => {
    p.ours.push(t.seconds);
    p.rssKiB = Math.max(p.rssKiB, t.maxRssKiB ?? 0);
  };
  const push7 = pair(`${label}: push ${mb(img.blobBytes)} (${img.layers} layers)`, img.blobBytes);
  const pull7 = pair(`${label}: pull ${mb(img.blobBytes)} (${img.layers} layers)`, img.blobBytes);
  const push1 = pair(`${label}: push ${mb(one.blobBytes)} (1 layer)`, one.blobBytes);
  const copy1 = pair(`${label}: registry-to-registry copy ${mb(one.blobBytes)} (1 layer)`, one.blobBytes);

  /** Push of `image` to a fresh registry, by ocitool or skopeo. */
  const pushCase = (p: Pair, image: BenchImage) => [
    async (): Promise<void> => {
      const t = await withRegistry(async (host) => {
        const env = await freshCache();
        settle();
        return ocitool(['push', '-q', image.ref, `docker://${host}/bench/img:1`], env);
      });
      ours(p, t);
    },
    async (): Promise<void> => {
      const t = await withRegistry(async (host) => {
        settle();
        return skopeoCopy(image.ref, `docker://${host}/bench/img:1`);
      });
      p.theirs.push(t.seconds);
    },
  ];
  /** Pull from a registry skopeo filled, into an empty layout each time. */
  const pullCase = [
    async (host: string): Promise<void> => {
      const out = fresh('pulled');
      const env = await freshCache();
      settle();
      const o = await ocitool(['pull', '-q', `docker://${host}/bench/img:1`, `oci:${out}:1`], env);
      ours(pull7, o);
      const expected = o.stdout.trim().split('\n').pop();
      const got = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/bench/img:1`]).toString()) as { Digest: string };
      if (expected !== got.Digest) throw new Error(`ocitool pulled ${expected}, the registry has ${got.Digest}`);
    },
    async (host: string): Promise<void> => {
      const out = fresh('pulled');
      settle();
      pull7.theirs.push((await skopeoCopy(`docker://${host}/bench/img:1`, `oci:${out}:1`)).seconds);
    },
  ];
  /** Copy from a registry skopeo filled to a fresh one. */
  const copyCase = [
    async (src: string): Promise<void> => {
      const t = await withRegistry(async (host) => {
        const env = await freshCache();
        settle();
        return ocitool(['copy', '-q', `docker://${src}/bench/one:1`, `docker://${host}/bench/one:1`], env);
      });
      ours(copy1, t);
      const digest = t.stdout.trim().split('\n').pop();
      const got = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${src}/bench/one:1`]).toString()) as { Digest: string };
      if (digest !== got.Digest) throw new Error(`ocitool copied ${digest}, the source has ${got.Digest}`);
    },
    async (src: string): Promise<void> => {
      const t = await withRegistry(async (host) => {
        settle();
        return skopeoCopy(`docker://${src}/bench/one:1`, `docker://${host}/bench/one:1`);
      });
      copy1.theirs.push(t.seconds);
    },
  ];
  const last = (p: Pair): string => `${p.ours.at(-1)!.toFixed(2)} s vs skopeo ${p.theirs.at(-1)!.toFixed(2)} s`;
  const once = async (i: number): Promise<void> => {
    const before = made.length;
    const ordered = <T>(xs: T[]): T[] => (i % 2 === 0 ? xs : [...xs].reverse());
    for (const step of ordered(pushCase(push7, img))) await step();
    await withRegistry(async (host) => {
      await skopeoCopy(img.ref, `docker://${host}/bench/img:1`);
      for (const step of ordered(pullCase)) await step(host);
    });
    for (const step of ordered(pushCase(push1, one))) await step();
    await withRegistry((host) => curlFloor(push1, host, { file: one.layer.file }));
    await withRegistry(async (src) => {
      await skopeoCopy(one.ref, `docker://${src}/bench/one:1`);
      for (const step of ordered(copyCase)) await step(src);
      await withRegistry((dst) => curlFloor(copy1, dst, { url: `http://${src}/v2/bench/one/blobs/${one.layer.digest}` }));
    });
    process.stderr.write(`  run ${i + 1} (${label}): push7 ${last(push7)}; pull7 ${last(pull7)}; push1 ${last(push1)}; copy1 ${last(copy1)}\n`);
    if (where !== work) for (const d of made.splice(before)) await rm(d, { recursive: true, force: true });
  };
  return { pairs: [push7, pull7, push1, copy1], once, cleanup: async () => { for (const d of made) await rm(d, { recursive: true, force: true }); } };
}

/**
 * The cases, each ocitool against `skopeo copy`, interleaved run by run (the order alternating) so
 * that both see the same machine: push and pull of the 7-layer image, push of the one-layer image to
 * a fresh registry, and a copy of the one-layer image from one registry to another (both on loopback).
 * Each run does them twice: with the registries' storage and the pulled layouts on the work disk,
 * and on tmpfs. On this machine's disk both tools (and the registry, which fsyncs every blob it
 * stores) wait on the same writes, so the disk rows say more about the disk than about the clients;
 * the tmpfs rows take it out and leave what each client costs.
 */
export async function benchTransfer(work: string): Promise<string[]> {
  for (const cmd of ['docker-registry', 'skopeo']) execFileSync('sh', ['-c', `command -v ${cmd}`]);
  const img = await benchImage(work);
  const one = await oneLayerImage(work);
  process.stderr.write(`transfer: ${img.layers} layers, ${mb(img.blobBytes)} of blobs; one layer, ${mb(one.blobBytes)}\n`);
  const media = [medium('disk', work, img, one, work)];
  const shm = await tmpfsDir(img.blobBytes * 5 + one.blobBytes * 6); // one run's registries and pulls
  if (shm) media.push(medium('tmpfs', shm, img, one, work));
  else process.stderr.write('transfer: no tmpfs with room at /dev/shm: the disk rows only\n');
  try {
    for (let i = 0; i < REPEAT; i++) for (const m of media) await m.once(i);
  } finally {
    for (const m of media) await m.cleanup();
    if (shm) await rm(shm, { recursive: true, force: true });
  }
  const line = (p: Pair): string[] => {
    const o = median(p.ours);
    const t = median(p.theirs);
    const runs = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
    const lines = [
      `${p.what}: ocitool ${o.toFixed(2)} s (${(p.bytes / 1e6 / o).toFixed(0)} MB/s, peak RSS ${(p.rssKiB / 1024).toFixed(0)} MiB), skopeo copy ${t.toFixed(2)} s`,
      `  ratio ocitool/skopeo = ${(o / t).toFixed(2)} (goal <= 0.8); runs: ocitool ${runs(p.ours)}; skopeo ${runs(p.theirs)}`,
    ];
    if (p.floor.length > 0) {
      const f = median(p.floor);
      lines.push(`  floor: curl moving the layer alone in one PUT ${f.toFixed(2)} s = ${(f / t).toFixed(2)} of skopeo's time (runs: ${runs(p.floor)})`);
    }
    return lines;
  };
  return media.flatMap((m) => m.pairs).flatMap(line);
}
