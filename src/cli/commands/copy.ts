import { existsSync } from 'node:fs';
import { hostPlatform, parsePlatform } from '../../spec/platform.js';
import { parseCreds } from '../../registry/auth/credentials.js';
import { copy } from '../../transport/copy.js';
import { OciToolError } from '../../util/errors.js';
import { checkCompressionLevel, LEVELS_HELP } from '../../layer/levels.js';
import { parseImageArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';
import { progressReporter } from '../progress.js';
import { credentialFromFlags, registryOptions } from '../registry-args.js';

type Direction = 'any' | 'push' | 'pull';

const REFERENCE_FORMS = 'oci:DIR[:TAG|@DIGEST] (or DIR[:TAG]), docker://HOST/REPO[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], dir:DIR';

function makeCopyCommand(verb: 'copy' | 'push' | 'pull' | 'convert', describe: string, direction: Direction) {
  return defineCommand({
    command: `${verb} <src> <dst>`,
    describe,
    builder: (y) =>
      digestfileOption(registryOptions(y))
        .positional('src', { type: 'string', demandOption: true, describe: direction === 'pull' ? 'the image, docker://HOST/REPO[:TAG|@DIGEST]' : REFERENCE_FORMS })
        .positional('dst', { type: 'string', demandOption: true, describe: direction === 'push' ? 'where it goes, docker://HOST/REPO[:TAG]' : `where it goes: ${REFERENCE_FORMS}` })
        .option('src-creds', { type: 'string', describe: 'USER:PASSWORD for the source registry' })
        .option('dest-creds', { type: 'string', describe: 'USER:PASSWORD for the destination registry' })
        .option('src-tls-verify', { type: 'boolean', default: true, describe: 'verify TLS for the source registry (--src-tls-verify=false: --insecure for it alone)' })
        .option('dest-tls-verify', { type: 'boolean', default: true, describe: 'verify TLS for the destination registry (--dest-tls-verify=false: --insecure for it alone)' })
        .option('concurrency', { type: 'number', default: 4, describe: 'blobs transferred at once' })
        .option('platform', { type: 'string', describe: direction === 'pull' ? "from an index, copy only this OS/ARCH[/VARIANT] (default: this host's)" : 'from an index, copy only this OS/ARCH[/VARIANT] (default: every platform)' })
        .option('all-platforms', {
          alias: ['a', 'all'],
          type: 'boolean',
          default: direction !== 'pull',
          describe: direction === 'pull' ? "copy a whole index, not only this host's platform" : 'copy a whole index (--platform picks one image instead)',
        })
        .option('format', { choices: ['oci', 'docker'] as const, describe: verb === 'convert' ? 'media types of the result (default oci)' : 'convert to OCI or Docker schema 2 media types on the way' })
        .option('compression', { choices: ['gzip', 'zstd', 'none'] as const, describe: 're-encode layers (diff_ids kept); default: as they are' })
        .option('compression-level', { type: 'number', describe: `level of --compression: ${LEVELS_HELP}` })
        .option('preserve-digests', { type: 'boolean', default: false, describe: 'into oci: or oci-archive:, keep Docker schema 2 manifests and lists as they are (bytes, digests) instead of converting them to OCI; skopeo, umoci and oci-image-tool cannot open such entries' })
        .option('referrers', { type: 'boolean', default: false, describe: "also copy the image's referrers (signatures, SBOMs…) and theirs" })
        .option('manifest', { type: 'string', describe: 'copy the image of this manifest file, its blobs read from SRC (a layout, dir: or registry)' })
        .option('ignore-signatures', { type: 'boolean', default: false, describe: 'convert a signed schema 1 manifest whose signatures do not verify' })
        .option('all-tags', { type: 'boolean', default: false, describe: 'copy every tag of the source repository (docker://HOST/REPO) to the same tags at DST (a repository or oci:DIR)' }),
    run: async (args, out, { signal }) => {
      if (args['all-tags']) {
        if (args.manifest !== undefined || args.format !== undefined || args.compression !== undefined || args.referrers) throw new OciToolError('USAGE', `${verb} --all-tags: copies images as they are (no --manifest, --format, --compression or --referrers)`);
        const { copyAllTags } = await import('./sync.js');
        return copyAllTags({ ...args, jobs: 4, 'dry-run': false }, out, signal);
      }
      const srcRef = parseImageArg(args.src);
      const dstRef = parseImageArg(args.dst);
      if (direction === 'push' && dstRef.transport !== 'docker') throw new OciToolError('USAGE', `push: ${args.dst}: the destination must be a registry, docker://HOST/REPO[:TAG] (to write a layout or an archive, use copy)`);
      if (direction === 'pull' && srcRef.transport !== 'docker') throw new OciToolError('USAGE', `pull: ${args.src}: the source must be a registry, docker://HOST/REPO[:TAG|@DIGEST] (to read a layout or an archive, use copy)`);
      if (dstRef.transport === 'oci' && dstRef.digest) throw new OciToolError('USAGE', `${verb}: ${args.dst}: a destination is named by a tag, not a digest`);
      if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new OciToolError('USAGE', `${verb}: --concurrency must be a positive integer`);
      const level = args['compression-level'];
      if (level !== undefined && args.compression === undefined) throw new OciToolError('USAGE', `${verb}: --compression-level needs --compression (layers are copied as they are without it)`);
      if (args.compression !== undefined) checkCompressionLevel(args.compression, level, `${verb}: --compression-level`);
      if (args.manifest !== undefined && !existsSync(args.manifest)) throw new OciToolError('NOT_FOUND', `${verb}: --manifest ${args.manifest}: no such file`);
      if (args.format === 'docker' && args.compression === 'zstd') throw new OciToolError('USAGE', `${verb}: Docker schema 2 has no zstd layers: use --format oci or another --compression`);
      // --creds / --username name the one registry in the copy (push: the destination, pull: the source).
      const shared = await credentialFromFlags(args);
      const bothRegistries = srcRef.transport === 'docker' && dstRef.transport === 'docker';
      if (shared && bothRegistries && direction === 'any') throw new OciToolError('USAGE', `${verb}: both ends are registries: use --src-creds and --dest-creds`);
      const sharedSide = direction === 'push' ? 'dst' : direction === 'pull' ? 'src' : srcRef.transport === 'docker' ? 'src' : 'dst';
      const srcCredential = args['src-creds'] !== undefined ? parseCreds(args['src-creds']) : sharedSide === 'src' ? shared : undefined;
      const dstCredential = args['dest-creds'] !== undefined ? parseCreds(args['dest-creds']) : sharedSide === 'dst' ? shared : undefined;
      const platform = args.platform !== undefined ? parsePlatform(args.platform) : args['all-platforms'] ? undefined : hostPlatform();
      // Ctrl-C (main's signal) cancels requests in flight; temp files are removed as their writers fail.
      const progress = progressReporter(out, process.stderr, Date.now, signal);
      try {
        const { descriptor } = await copy(srcRef, dstRef, {
          concurrency: args.concurrency,
          insecure: args.insecure,
          srcInsecure: args.insecure || !args['src-tls-verify'],
          dstInsecure: args.insecure || !args['dest-tls-verify'],
          ...(args.format !== undefined ? { format: args.format } : verb === 'convert' ? { format: 'oci' as const } : {}),
          ...(args.compression !== undefined ? { compression: args.compression } : {}),
          ...(args['compression-level'] !== undefined ? { level: args['compression-level'] } : {}),
          ...(args['ignore-signatures'] ? { ignoreSignatures: true } : {}),
          ...(args.manifest !== undefined ? { manifestFile: args.manifest } : {}),
          ...(args.referrers ? { referrers: true } : {}),
          ...(args['preserve-digests'] ? { preserveDigests: true } : {}),
          warn: (m) => out.warn(m),
          signal,
          onProgress: (e) => progress.onProgress(e),
          ...(platform ? { platform } : {}),
          ...(srcCredential ? { srcCredential } : {}),
          ...(dstCredential ? { dstCredential } : {}),
        });
        progress.finish();
        return { reference: dstRef, descriptor, wrote: true, fields: { ...progress.counts() } };
      } catch (err) {
        progress.fail();
        throw err;
      }
    },
  });
}

export const copyCommand = makeCopyCommand('copy', 'Copy an image between any two places (layouts, registries), blobs deduplicated and verified', 'any');
export const pushCommand = makeCopyCommand('push', 'Copy an image to a registry (copy, checked that the destination is docker://)', 'push');
export const convertCommand = makeCopyCommand(
  'convert',
  'Copy an image converting it: schema 1 to schema 2/OCI, Docker <-> OCI (--format, default oci), layer compression (--compression)',
  'any',
);
export const pullCommand = makeCopyCommand('pull', 'Copy an image from a registry (copy, checked that the source is docker://)', 'pull');
