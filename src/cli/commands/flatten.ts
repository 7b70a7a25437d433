import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CopyEvent } from '../../content/copy.js';
import { OciToolError, errno } from '../../util/errors.js';
import { fileHandleWriter, holdTemp, removeQuietly, tempName } from '../../util/fs.js';
import { createdSeconds, parseImageArg, platformArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';
import { fsErrorText } from '../../unpack/paths.js';
import { humanSize } from '../output.js';
import { progressReporter } from '../progress.js';
import { layerOutput, checkNewImageDestination, layerOutputOptions, NEW_IMAGE_TAG_HELP } from '../image-out-args.js';
import { registryOpen, registryOptions } from '../registry-args.js';

export const flattenCommand = defineCommand({
  command: 'flatten <ref>',
  describe: "Make an image of one layer holding REF's filesystem (whiteouts applied), config kept, history reduced to one entry",
  builder: (y) =>
    digestfileOption(registryOptions(
      layerOutputOptions(y
        .positional('ref', { type: 'string', demandOption: true, describe: 'the image to flatten, e.g. oci:DIR:TAG or docker://HOST/REPO:TAG' })
        .option('tag', { type: 'string', demandOption: true, describe: NEW_IMAGE_TAG_HELP })
        .option('platform', { type: 'string', describe: 'OS/ARCH[/VARIANT] to pick from an index (default: this host)' })
        .option('created', { type: 'string', describe: "creation time (RFC 3339 or epoch seconds; default SOURCE_DATE_EPOCH, else the source's)" })),
    )),
  run: async (args, out, { signal }) => {
    const src = parseImageArg(args.ref);
    const dst = parseImageArg(args.tag);
    checkNewImageDestination('flatten', args.tag, dst);
    const layerOut = layerOutput(args);
    if (args.format === 'docker' && args.compression === 'zstd') throw new OciToolError('USAGE', '--compression zstd: Docker manifests have no zstd layers (use --format oci)');
    const platform = platformArg(args.platform);
    const created = createdSeconds(args.created);
    const registry = await registryOpen(args);
    const progress = progressReporter(out, process.stderr, Date.now, signal);
    const showProgress = dst.transport !== 'oci';
    const { flatten } = await import('../../image/flatten.js');
    const result = await flatten(src, dst, {
      signal,
      ...(registry.insecure ? { insecure: true } : {}),
      // --creds are the destination registry's, and the source's only on that same host.
      ...(registry.credential && dst.transport === 'docker' ? { dstCredential: registry.credential } : {}),
      ...(registry.credential && src.transport === 'docker' && (dst.transport !== 'docker' || dst.ref.domain === src.ref.domain) ? { srcCredential: registry.credential } : {}),
      ...(platform ? { platform } : {}),
      ...(created !== undefined ? { created } : {}),
      ...layerOut,
      warn: (m) => out.warn(m),
      ...(showProgress ? { onProgress: (e: CopyEvent) => progress.onProgress(e) } : {}),
    }).catch((err: unknown) => {
      if (showProgress) progress.fail();
      throw err;
    });
    if (showProgress) progress.finish();
    const l = result.layer;
    out.note('layer', { digest: l.descriptor.digest, mediaType: l.descriptor.mediaType, size: l.descriptor.size, diffId: l.diffId, source: result.source.digest }, `layer ${l.descriptor.digest} ${humanSize(l.descriptor.size)} (${humanSize(l.uncompressedSize)} uncompressed) from ${result.source.digest}`);
    out.note('config', { digest: result.config.digest, mediaType: result.config.mediaType, size: result.config.size }, `config ${result.config.digest}`);
    return { reference: dst, descriptor: result.manifest, wrote: true, fields: { source: result.source.digest, ...(showProgress ? progress.counts() : {}) } };
  },
});

export const exportCommand = defineCommand({
  command: 'export <ref>',
  describe: "Write REF's filesystem (whiteouts applied) as one tar, to stdout or a file",
  builder: (y) =>
    registryOptions(
      y
        .positional('ref', { type: 'string', demandOption: true, describe: 'the image, e.g. oci:DIR:TAG or docker://HOST/REPO:TAG' })
        .option('output', { alias: 'o', type: 'string', describe: 'write the tar to FILE (made whole or not at all) instead of stdout' })
        .option('platform', { type: 'string', describe: 'OS/ARCH[/VARIANT] to pick from an index (default: this host)' }),
    ),
  run: async (args, out, { signal }) => {
    const src = parseImageArg(args.ref);
    const platform = platformArg(args.platform);
    const file = args.output;
    if (file === undefined && process.stdout.isTTY) throw new OciToolError('USAGE', 'export: stdout is a terminal; redirect it or give -o FILE');
    if (file === undefined && args.json) throw new OciToolError('USAGE', 'export --json: stdout carries the tar; give -o FILE');
    const registry = await registryOpen(args);
    const { exportImage } = await import('../../image/flatten.js');
    const opts = { signal, ...(platform ? { platform } : {}), ...(registry.insecure ? { insecure: true } : {}), ...(registry.credential ? { credential: registry.credential } : {}) };
    if (file === undefined) {
      const r = await exportImage(src, process.stdout, opts).catch((err: unknown) => {
        if (errno(err) === 'EPIPE') throw new OciToolError('IO', 'export: stdout was closed before the tar was whole');
        throw err;
      });
      out.info(`exported ${r.manifest.digest}`);
      return { printed: true };
    }
    // A temp file beside FILE, renamed over it when whole: nothing at FILE on failure.
    const tmp = tempName(dirname(file), '.ocitool-export');
    const release = holdTemp(tmp);
    try {
      const fh = await open(tmp, 'wx', 0o644).catch((err: unknown) => {
        throw new OciToolError('IO', `export -o ${file}: cannot write there: ${errno(err) === 'ENOENT' ? 'its folder does not exist' : fsErrorText(err)}`);
      });
      let exported;
      try {
        const w = fileHandleWriter(fh, true);
        exported = await exportImage(src, w, opts);
        await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
      } finally {
        await fh.close().catch(() => undefined);
      }
      await rename(tmp, file).catch((err: unknown) => {
        throw new OciToolError('IO', `export -o ${file}: cannot put the tar there: ${fsErrorText(err)}`);
      });
      release();
      out.info(`exported ${exported.manifest.digest}`);
      return { reference: src, descriptor: exported.manifest, fields: { file } };
    } catch (err) {
      if (await removeQuietly(tmp)) release();
      throw err;
    }
  },
});
