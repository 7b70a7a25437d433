import { createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fetchBytes, type Fetcher, type Resolver } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { MediaType } from '../spec/media-types.js';
import { parseManifest } from '../spec/parse.js';
import { Annotation, type Descriptor } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';
import { RootResolver, UnsafeEntry, entryComponents, fsErrorText } from '../unpack/paths.js';
import { makeDirectory, unpackFrom } from '../unpack/unpack.js';
import { TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION } from './artifact.js';

export interface PulledFile {
  title: string;
  digest: string;
  size: number;
  directory: boolean;
}

/**
 * Writes an artifact's layers into `dir` by their title annotations. A title that is absolute or climbs
 * out of `dir` is refused (nothing is written for it, and the pull fails); a directory layer (ORAS's
 * unpack annotation) is unpacked with unpack's rules and must hold exactly its title's last name at its
 * top level, a directory (as oras-go's file store insists): `docs` whose tar also holds `victim/` or
 * `.ssh/` is refused. Every layer is first fetched (verified as it streams) or unpacked into a private
 * staging directory inside `dir`, and checked; only when all are whole does anything move into place,
 * each path resolved afresh inside `dir` with unpack's resolver (a symlink an earlier layer brought is
 * followed as inside the container, never out of `dir`). Layers without a title are skipped with a
 * warning, as ORAS does.
 */
export async function pullArtifact(store: Fetcher & Resolver & { readonly name?: string }, desc: Descriptor, dir: string, opts: { warn?: (m: string) => void } = {}): Promise<PulledFile[]> {
  const what = `${store.name ?? 'artifact'}@${desc.digest}`;
  const parsed = parseManifest(await fetchBytes(store, desc), what, desc.mediaType);
  if (parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${what}: not an artifact manifest (a ${parsed.mediaType})`);
  const layers = parsed.manifest.layers;
  // Every title is checked before anything is fetched.
  const plan = layers.map((l) => {
    const title = l.annotations?.[Annotation.Title];
    if (title === undefined) return undefined;
    try {
      const parts = entryComponents(title);
      if (parts.length === 0) throw new UnsafeEntry('it names the directory itself');
      return { layer: l, title, parts, directory: l.annotations?.[UNPACK_ANNOTATION] === 'true' };
    } catch (err) {
      if (err instanceof UnsafeEntry) throw new OciToolError('UNSUPPORTED', `refused layer ${l.digest} of ${what}: title ${JSON.stringify(title)}: ${err.message}`);
      throw err;
    }
  });
  await makeDirectory(dir, 'artifact pull');
  const staging = await mkdtemp(join(dir, '.ocitool-pull-'));
  try {
    // 1. Everything into the staging directory, checked.
    const staged: { p: NonNullable<(typeof plan)[number]>; from: string }[] = [];
    for (const [i, p] of plan.entries()) {
      if (!p) {
        opts.warn?.(`layer ${layers[i]!.digest} has no ${Annotation.Title} annotation: skipped`);
        continue;
      }
      const tmp = join(staging, String(i));
      if (p.directory) staged.push({ p, from: await stageDirectory(store, p.layer, p.parts.at(-1)!, tmp, `layer ${p.layer.digest} of ${what}: directory titled ${JSON.stringify(p.title)}`, opts.warn) });
      else {
        await pipeline(await store.fetch(p.layer), createWriteStream(tmp, { flags: 'wx' }));
        staged.push({ p, from: tmp });
      }
    }
    // 2. Into place, in order, each target resolved afresh (no memory of a tree an earlier layer changed).
    const out: PulledFile[] = [];
    for (const { p, from } of staged) {
      const where = `layer ${p.layer.digest} of ${what}: title ${JSON.stringify(p.title)}`;
      try {
        const target = join(dir, new RootResolver(dir).resolve(p.parts));
        if (p.directory) await rm(target, { recursive: true, force: true });
        await rename(from, target);
      } catch (err) {
        if (err instanceof UnsafeEntry) throw new OciToolError('UNSUPPORTED', `refused ${where}: ${err.message}`);
        if (errno(err) === undefined) throw err;
        throw new OciToolError('IO', `artifact pull: ${where}: ${fsErrorText(err)}`, { cause: err });
      }
      out.push({ title: p.title, digest: p.layer.digest, size: p.layer.size, directory: p.directory });
    }
    return out;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Unpacks a directory layer into `tmp` and returns the path of the one directory it must hold at its
 * top level, `name`; anything else there is refused, naming it.
 */
async function stageDirectory(store: Fetcher, layer: Descriptor, name: string, tmp: string, what: string, warn?: (m: string) => void): Promise<string> {
  const diffId = layer.annotations?.[TAR_DIGEST_ANNOTATION];
  if (!diffId) throw new OciToolError('UNSUPPORTED', `${what}: lacks ${TAR_DIGEST_ANNOTATION}`);
  await unpackFrom(single(store, layer, diffId), '', tmp, { state: false, rootless: true, ...(warn ? { warn } : {}) });
  const other = (await readdir(tmp)).find((n) => n !== name);
  if (other !== undefined) throw new OciToolError('UNSUPPORTED', `refused ${what}: it also holds ${JSON.stringify(other)} at its top level (a directory layer holds only ${JSON.stringify(name)})`);
  const top = join(tmp, name);
  if (!(await lstat(top).catch(() => undefined))?.isDirectory()) throw new OciToolError('UNSUPPORTED', `refused ${what}: it holds no directory ${JSON.stringify(name)} at its top level`);
  return top;
}

/** One layer of `store` as a one-layer image (for unpack), its diffID as the artifact states it. */
function single(store: Fetcher, layer: Descriptor, diffId: string): Fetcher & Resolver & { name: string } {
  const config = Buffer.from(JSON.stringify({ architecture: 'unknown', os: 'unknown', rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layer] }));
  const manifestDesc: Descriptor = { mediaType: MediaType.OciManifest, digest: digestOf(manifest), size: manifest.length };
  return {
    name: `layer ${layer.digest}`,
    resolve: async () => manifestDesc,
    fetch: async (d: Descriptor) => (d.digest === manifestDesc.digest ? Readable.from([manifest]) : d.digest === configDesc.digest ? Readable.from([config]) : store.fetch(d)),
  };
}
