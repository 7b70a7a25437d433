/**
 * The conversion benchmark, ocitool against skopeo copy on the same image (/usr/share/doc, man and
 * locale: real, compressible content), runs interleaved, dirty pages flushed before each run:
 * - tar -> gzip: every layer of a plain-tar layout compressed into another layout (`convert
 *   --compression gzip` vs `skopeo copy --dest-compress`);
 * - gzip -> docker-archive: every layer decompressed into a `docker save` tar (`copy` to
 *   docker-archive: vs the same with skopeo). (skopeo's --dest-decompress leaves OCI layouts
 *   compressed, so a docker archive is the destination both decompress for.)
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPEAT, median, ocitool, run, type Timed } from './common.js';

interface Pair {
  ours: number[];
  theirs: number[];
  rssKiB: number;
}

async function blobBytes(layout: string): Promise<number> {
  const dir = join(layout, 'blobs', 'sha256');
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

export async function benchConvert(work: string): Promise<string[]> {
  execFileSync('sh', ['-c', 'command -v skopeo']);
  const plain = join(work, 'convert-plain');
  const gzipped = join(work, 'convert-gzip');
  if (!existsSync(join(plain, 'index.json'))) {
    process.stderr.write('convert: building the plain-tar input image…\n');
    const adds: string[] = [];
    for (const d of ['doc', 'man', 'locale']) if (existsSync(`/usr/share/${d}`)) adds.push('--add', `/usr/share/${d}:/usr/share/${d}`);
    await ocitool(['build', '-q', '--compression', 'none', '--tag', `oci:${plain}:p`, ...adds], { SOURCE_DATE_EPOCH: '1700000000' });
    await ocitool(['build', '-q', '--compression', 'gzip', '--tag', `oci:${gzipped}:g`, ...adds], { SOURCE_DATE_EPOCH: '1700000000' });
  }
  const plainBytes = await blobBytes(plain);
  const out = join(work, 'convert-out');
  const settle = (): void => void execFileSync('sync');
  const compress: Pair = { ours: [], theirs: [], rssKiB: 0 };
  const decompress: Pair = { ours: [], theirs: [], rssKiB: 0 };
  const step = async (pair: Pair, ours: boolean, go: () => Promise<Timed>): Promise<void> => {
    await rm(out, { recursive: true, force: true });
    settle();
    const t = await go();
    (ours ? pair.ours : pair.theirs).push(t.seconds);
    if (ours) pair.rssKiB = Math.max(pair.rssKiB, t.maxRssKiB ?? 0);
  };
  const steps = [
    () => step(compress, true, () => ocitool(['convert', '-q', '--compression', 'gzip', `oci:${plain}:p`, `oci:${out}:x`])),
    () => step(compress, false, () => run('skopeo', ['copy', '-q', '--dest-compress', '--dest-compress-format', 'gzip', `oci:${plain}:p`, `oci:${out}:x`])),
    () => step(decompress, true, () => ocitool(['copy', '-q', `oci:${gzipped}:g`, `docker-archive:${out}:bench:1`])),
    () => step(decompress, false, () => run('skopeo', ['copy', '-q', `oci:${gzipped}:g`, `docker-archive:${out}:bench:1`])),
  ];
  for (let i = 0; i < REPEAT; i++) {
    // Alternate who goes first within each pair.
    const order = i % 2 === 0 ? [0, 1, 2, 3] : [1, 0, 3, 2];
    for (const k of order) await steps[k]!();
    process.stderr.write(`  run ${i + 1}: gzip ${compress.ours.at(-1)!.toFixed(2)} s vs skopeo ${compress.theirs.at(-1)!.toFixed(2)} s; gunzip ${decompress.ours.at(-1)!.toFixed(2)} s vs skopeo ${decompress.theirs.at(-1)!.toFixed(2)} s\n`);
  }
  await rm(out, { recursive: true, force: true });
  const line = (what: string, p: Pair): string[] => {
    const o = median(p.ours);
    const t = median(p.theirs);
    return [
      `convert ${what}, ${(plainBytes / 1e6).toFixed(0)} MB of tar: ocitool ${o.toFixed(2)} s (peak RSS ${(p.rssKiB / 1024).toFixed(0)} MiB), skopeo copy ${t.toFixed(2)} s`,
      `  ratio ocitool/skopeo = ${(o / t).toFixed(2)}; runs: ocitool ${p.ours.map((x) => x.toFixed(2)).join(', ')}; skopeo ${p.theirs.map((x) => x.toFixed(2)).join(', ')}`,
    ];
  };
  return [...line('tar -> gzip (layout to layout)', compress), ...line('gzip -> docker-archive', decompress)];
}
