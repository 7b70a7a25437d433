/**
 * The mirror benchmark: `ocitool sync` against `skopeo sync`, the same skopeo sync YAML file, from one
 * local registry to a fresh one each run (distribution, loopback, no auth). The source holds 20
 * repositories of 3 tags each (two tags name one image, the third another), every image built on one
 * shared 30 MB base layer with a 2 MB layer of its own. Then each tool's rerun of the same sync onto
 * what it just wrote (nothing changed): skopeo copies every image again (blobs found, manifests PUT);
 * ocitool compares digests and skips. Runs interleaved, order alternating.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPEAT, median, ocitool, run, type Timed } from './common.js';
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';

const REPOS = 20;

/** The 40 images (20 repositories × 2 images) in a layout, built once per bench run. */
async function images(work: string): Promise<{ layout: string; tags: string[] }> {
  const layout = join(work, 'sync-images');
  const tags: string[] = [];
  for (let r = 0; r < REPOS; r++) for (const t of ['1', '2']) tags.push(`r${r}-${t}`);
  if (existsSync(join(layout, 'index.json'))) return { layout, tags };
  process.stderr.write('sync: building 40 images on a shared base…\n');
  const base = join(work, 'sync-base');
  await mkdir(base, { recursive: true });
  await writeFile(join(base, 'base.bin'), randomBytes(30 << 20));
  await ocitool(['build', '-q', '--tag', `oci:${layout}:base`, '--add', `${base}:/base`], { SOURCE_DATE_EPOCH: '1700000000' });
  for (const tag of tags) {
    const own = join(work, `sync-own-${tag}`);
    await mkdir(own, { recursive: true });
    await writeFile(join(own, 'own.bin'), randomBytes(2 << 20));
    await ocitool(['build', '-q', '--from', `oci:${layout}:base`, '--tag', `oci:${layout}:${tag}`, '--add', `${own}:/app`], { SOURCE_DATE_EPOCH: '1700000000' });
  }
  return { layout, tags };
}

export async function benchSync(work: string): Promise<string[]> {
  const { layout, tags } = await images(work);
  const src = await startRegistry({ storage: join(work, 'sync-src') });
  const made: TestRegistry[] = [];
  try {
    // Repository app/rN: tags v1 and latest name image 1, v2 image 2.
    for (let r = 0; r < REPOS; r++) {
      for (const [tag, image] of [['v1', '1'], ['latest', '1'], ['v2', '2']] as const) {
        await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:r${r}-${image}`, `docker://${src.host}/app/r${r}:${tag}`]);
      }
    }
    const yaml = join(work, 'sync.yaml');
    const repos = Array.from({ length: REPOS }, (_, r) => `    app/r${r}: []`);
    await writeFile(yaml, [`${src.host}:`, '  tls-verify: false', '  images:', ...repos, ''].join('\n'));
    process.stderr.write(`sync: ${REPOS} repositories, ${REPOS * 3} tags, ${tags.length} images\n`);
    const settle = (): void => void execFileSync('sync');
    const fresh = async (): Promise<TestRegistry> => {
      const reg = await startRegistry({ storage: join(work, `sync-dst-${made.length}`) });
      made.push(reg);
      return reg;
    };
    const cache = async (): Promise<NodeJS.ProcessEnv> => {
      const dir = join(work, `sync-cache-${made.length}`);
      await mkdir(dir, { recursive: true });
      return { OCITOOL_CACHE_DIR: dir };
    };
    const times = { ours: [] as number[], theirs: [] as number[], oursAgain: [] as number[], theirsAgain: [] as number[] };
    let rss = 0;
    const oursRun = async (): Promise<void> => {
      const dst = await fresh();
      const env = await cache();
      const go = async (): Promise<Timed> => {
        settle();
        const t = await ocitool(['sync', '-q', yaml, `docker://${dst.host}/mirror`], env);
        rss = Math.max(rss, t.maxRssKiB ?? 0);
        if (!t.stdout.includes('0 failed')) throw new Error(`ocitool sync: ${t.stdout}`);
        return t;
      };
      times.ours.push((await go()).seconds);
      const again = await go();
      if (!again.stdout.includes(`0 copied, ${REPOS * 3} skipped`)) throw new Error(`ocitool sync rerun copied: ${again.stdout}`);
      times.oursAgain.push(again.seconds);
      await dst.stop();
    };
    const theirsRun = async (): Promise<void> => {
      const dst = await fresh();
      const go = async (): Promise<Timed> => {
        settle();
        return run('skopeo', ['sync', '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', yaml, `${dst.host}/mirror`]);
      };
      times.theirs.push((await go()).seconds);
      times.theirsAgain.push((await go()).seconds);
      await dst.stop();
    };
    for (let i = 0; i < REPEAT; i++) {
      for (const step of i % 2 === 0 ? [oursRun, theirsRun] : [theirsRun, oursRun]) await step();
      process.stderr.write(`  run ${i + 1}: sync ${times.ours.at(-1)!.toFixed(2)} s vs skopeo ${times.theirs.at(-1)!.toFixed(2)} s; rerun ${times.oursAgain.at(-1)!.toFixed(2)} s vs ${times.theirsAgain.at(-1)!.toFixed(2)} s\n`);
    }
    const runs = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ');
    const o = median(times.ours);
    const t = median(times.theirs);
    const oa = median(times.oursAgain);
    const ta = median(times.theirsAgain);
    return [
      `sync of ${REPOS * 3} tags (${tags.length} images, shared base) registry to registry: ocitool ${o.toFixed(2)} s (peak RSS ${(rss / 1024).toFixed(0)} MiB), skopeo sync ${t.toFixed(2)} s`,
      `  ratio ocitool/skopeo = ${(o / t).toFixed(2)} (goal <= 0.8); runs: ocitool ${runs(times.ours)}; skopeo ${runs(times.theirs)}`,
      `rerun of that sync, nothing changed: ocitool ${oa.toFixed(2)} s, skopeo sync ${ta.toFixed(2)} s`,
      `  ratio ocitool/skopeo = ${(oa / ta).toFixed(2)} (goal <= 0.2); runs: ocitool ${runs(times.oursAgain)}; skopeo ${runs(times.theirsAgain)}`,
    ];
  } finally {
    for (const r of made) await r.stop();
    await src.stop();
  }
}
