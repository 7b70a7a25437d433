import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fetchBytes, type Fetcher, type Resolver } from '../content/store.js';
import { digestOf } from '../digest/digest.js';
import { MediaType } from '../spec/media-types.js';
import { parseManifest } from '../spec/parse.js';
import { Annotation, type Descriptor } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';
import { RootResolver, UnsafeEntry, entryComponents } from '../unpack/paths.js';
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
 * unpack annotation) is unpacked with unpack's rules. Files are verified as they stream, and renamed
 * into place only when whole. Layers without a title are skipped with a warning, as ORAS does.
 */
export async function pullArtifact(store: Fetcher & Resolver & { readonly name?: string }, desc: Descriptor, dir: string, opts: { warn?: (m: string) => void } = {}): Promise<PulledFile[]> {
  const what = `${store.name ?? 'artifact'}@${desc.digest}`;
  const parsed = parseManifest(await fetchBytes(store, desc), what, desc.mediaType);
  if (parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${what}: not an artifact manifest (a ${parsed.mediaType})`);
  const layers = parsed.manifest.layers;
  // Every title is checked before anything is written.
  const plan = layers.map((l) => {
    const title = l.annotations?.[Annotation.Title];
    if (title === undefined) return undefined;
    try {
      const parts = entryComponents(title);
      if (parts.length === 0) throw new UnsafeEntry('it names the directory itself');
      return { layer: l, title, parts };
    } catch (err) {
      if (err instanceof UnsafeEntry) throw new OciToolError('UNSUPPORTED', `refused layer ${l.digest} of ${what}: title ${JSON.stringify(title)}: ${err.message}`);
      throw err;
    }
  });
  await makeDirectory(dir, 'artifact pull');
  const paths = new RootResolver(dir);
  const out: PulledFile[] = [];
  for (const [i, p] of plan.entries()) {
    if (!p) {
      opts.warn?.(`layer ${layers[i]!.digest} has no ${Annotation.Title} annotation: skipped`);
      continue;
    }
    const rel = paths.resolve(p.parts);
    const target = join(dir, rel);
    const tmp = join(dirname(target), `.ocitool-pull-${randomBytes(6).toString('hex')}`);
    try {
      if (p.layer.annotations?.[UNPACK_ANNOTATION] === 'true') {
        const diffId = p.layer.annotations[TAR_DIGEST_ANNOTATION];
        if (!diffId) throw new OciToolError('UNSUPPORTED', `${what}: directory layer ${p.layer.digest} lacks ${TAR_DIGEST_ANNOTATION}`);
        await unpackFrom(single(store, p.layer, diffId), '', tmp, { state: false, rootless: true, ...(opts.warn ? { warn: opts.warn } : {}) });
        // The tar holds TITLE/…: move what it made into place.
        for (const name of await readdir(tmp)) {
          const dest = join(dirname(target), name);
          await rm(dest, { recursive: true, force: true });
          await rename(join(tmp, name), dest);
        }
      } else {
        await pipeline(await store.fetch(p.layer), createWriteStream(tmp, { flags: 'wx' }));
        await rename(tmp, target);
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    out.push({ title: p.title, digest: p.layer.digest, size: p.layer.size, directory: p.layer.annotations?.[UNPACK_ANNOTATION] === 'true' });
  }
  return out;
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
