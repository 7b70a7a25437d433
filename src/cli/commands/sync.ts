import { parseCreds } from '../../registry/auth/credentials.js';
import type { ImageReference } from '../../reference/transport.js';
import { planAllTags, planRepository, planYaml, syncImages, type SyncImage, type SyncResult } from '../../transport/sync.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg, platformArg } from '../args.js';
import { defineCommand, type Outcome } from '../command.js';
import type { Output } from '../output.js';
import { registryOptions } from '../registry-args.js';

interface MirrorFlags {
  insecure: boolean;
  'src-creds'?: string;
  'dest-creds'?: string;
  concurrency: number;
  jobs?: number;
  platform?: string;
  'dry-run'?: boolean;
  json: boolean;
}

/**
 * Runs a plan: a note per image (stderr, or an `image` event with --json), then one summary line on
 * stdout; exit 1 (after trying every image) if any failed.
 */
export async function runMirror(verb: string, plan: (opts: { insecure: boolean; signal: AbortSignal }) => Promise<SyncImage[]>, args: MirrorFlags, out: Output, signal: AbortSignal): Promise<Outcome> {
  if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new OciToolError('USAGE', `${verb}: --concurrency must be a positive integer`);
  if (args.jobs !== undefined && (!Number.isInteger(args.jobs) || args.jobs < 1)) throw new OciToolError('USAGE', `${verb}: --jobs must be a positive integer`);
  const platform = platformArg(args.platform);
  const srcCredential = args['src-creds'] !== undefined ? parseCreds(args['src-creds']) : undefined;
  const dstCredential = args['dest-creds'] !== undefined ? parseCreds(args['dest-creds']) : undefined;
  const images = await plan({ insecure: args.insecure, signal });
  const result: SyncResult = await syncImages(images, {
    concurrency: args.concurrency,
    ...(args.jobs !== undefined ? { jobs: args.jobs } : {}),
    ...(platform ? { platform } : {}),
    insecure: args.insecure,
    ...(srcCredential ? { srcCredential } : {}),
    ...(dstCredential ? { dstCredential } : {}),
    ...(args['dry-run'] ? { dryRun: true } : {}),
    signal,
    warn: (m) => out.warn(m),
    onImage: (image, o) => {
      const fields = { source: image.name, status: o.status, ...('digest' in o ? { digest: o.digest } : { error: o.error.message }) };
      if (o.status === 'failed') {
        out.event('image', fields);
        process.stderr.write(`ocitool: ${verb}: ${image.name}: ${o.error.message}\n`);
      } else out.note('image', fields, `${o.status === 'would-copy' ? 'would copy' : o.status} ${image.name} (${o.digest})`);
    },
  });
  const line = `${verb}: ${result.copied} ${args['dry-run'] ? 'to copy' : 'copied'}, ${result.skipped} skipped, ${result.failed} failed`;
  const fields = { copied: result.copied, skipped: result.skipped, failed: result.failed, images: images.length, ...(args['dry-run'] ? { dryRun: true } : {}) };
  if (result.failed > 0) {
    out.result(line);
    throw new OciToolError('REGISTRY', `${verb}: ${result.failed} of ${images.length} image(s) failed (named above)`);
  }
  return { line, fields };
}

function repository(ref: ImageReference, verb: string, arg: string): ImageReference & { transport: 'docker' } {
  if (ref.transport !== 'docker') throw new OciToolError('USAGE', `${verb}: ${arg}: the source must be a registry repository (docker://HOST/REPO)`);
  return ref;
}

export default defineCommand({
  command: 'sync <src> <dst>',
  describe: 'Mirror many images: every tag of a repository (docker://HOST/REPO), or those a skopeo sync YAML file names, into a registry prefix (docker://HOST/PREFIX: PREFIX/REPO:TAG) or a layout (oci:DIR: tags REPO:TAG); images already there are skipped',
  builder: (y) =>
    registryOptions(y)
      .positional('src', { type: 'string', demandOption: true, describe: 'docker://HOST/REPO (all its tags), or a skopeo sync YAML file' })
      .positional('dst', { type: 'string', demandOption: true, describe: 'docker://HOST[/PREFIX] or oci:DIR' })
      .option('src-creds', { type: 'string', describe: 'USER:PASSWORD for the source registries (a YAML entry\'s credentials win)' })
      .option('dest-creds', { type: 'string', describe: 'USER:PASSWORD for the destination registry' })
      .option('concurrency', { type: 'number', default: 4, describe: 'blob transfers per image' })
      .option('jobs', { type: 'number', default: 4, describe: 'images copied at once' })
      .option('platform', { type: 'string', describe: 'from indexes, copy only this OS/ARCH[/VARIANT] (default: every platform)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'say what would be copied and skipped; copy nothing' }),
  run: async (args, out, { signal }) => {
    const dst = parseImageArg(args.dst);
    if (dst.transport === 'docker' && (dst.ref.digest !== undefined || (dst.ref.tag !== undefined && dst.ref.tag !== 'latest'))) throw new OciToolError('USAGE', `sync: ${args.dst}: a destination prefix has no tag or digest`);
    if (dst.transport === 'oci' && (dst.tag !== undefined || dst.digest !== undefined)) throw new OciToolError('USAGE', `sync: ${args.dst}: a destination layout has no tag (each image gets REPO:TAG)`);
    if (dst.transport !== 'docker' && dst.transport !== 'oci') throw new OciToolError('USAGE', `sync: ${args.dst}: the destination must be a registry (docker://HOST[/PREFIX]) or a layout (oci:DIR)`);
    const prefix: ImageReference = dst.transport === 'docker' ? { transport: 'docker', ref: { domain: dst.ref.domain, path: dst.ref.path } } : dst;
    const srcCredential = args['src-creds'] !== undefined ? parseCreds(args['src-creds']) : undefined;
    return runMirror(
      'sync',
      ({ insecure, signal: s }) =>
        args.src.startsWith('docker://')
          ? planRepository(repository(parseImageArg(args.src), 'sync', args.src).ref, prefix, { insecure, signal: s, ...(srcCredential ? { credential: srcCredential } : {}) })
          : planYaml(args.src, prefix, { warn: (m) => out.warn(m), signal: s }),
      args,
      out,
      signal,
    );
  },
});

/** `copy --all-tags SRC DST`: every tag of the source repository to the same tag at the destination. */
export async function copyAllTags(args: MirrorFlags & { src: string; dst: string }, out: Output, signal: AbortSignal): Promise<Outcome> {
  const src = repository(parseImageArg(args.src), 'copy --all-tags', args.src);
  const dst = parseImageArg(args.dst);
  if (dst.transport === 'docker' && (dst.ref.digest !== undefined || (dst.ref.tag !== undefined && dst.ref.tag !== 'latest'))) throw new OciToolError('USAGE', `copy --all-tags: ${args.dst}: name the destination repository without a tag`);
  if (dst.transport === 'oci' && (dst.tag !== undefined || dst.digest !== undefined)) throw new OciToolError('USAGE', `copy --all-tags: ${args.dst}: name the destination layout without a tag`);
  const srcCredential = args['src-creds'] !== undefined ? parseCreds(args['src-creds']) : undefined;
  return runMirror('copy --all-tags', ({ insecure, signal: s }) => planAllTags(src.ref, dst, { insecure, signal: s, ...(srcCredential ? { credential: srcCredential } : {}) }), args, out, signal);
}
