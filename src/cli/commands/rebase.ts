import { OciToolError } from '../../util/errors.js';
import { parseImageArg, platformArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';
import { progressReporter, watched } from '../progress.js';
import { registryOpen, registryOptions } from '../registry-args.js';

export default defineCommand({
  command: 'rebase <ref>',
  describe: "Move an image onto another base: its layers must start with --old-base's, which are replaced by --new-base's (mounted, not downloaded, in a registry); its own layers and config are kept",
  builder: (y) =>
    digestfileOption(registryOptions(y))
        .positional('ref', { type: 'string', demandOption: true, describe: 'the image to rebase' })
        .option('old-base', { type: 'string', demandOption: true, describe: 'the base the image was built on' })
        .option('new-base', { type: 'string', demandOption: true, describe: 'the base to move it onto' })
        .option('tag', { type: 'string', demandOption: true, describe: 'where the rebased image goes (any writable reference)' })
        .option('platform', { type: 'string', describe: "OS/ARCH[/VARIANT] to pick from indexes (default: the image's own; this host's from an index)" })
        .option('concurrency', { type: 'number', default: 4, describe: 'blobs transferred at once' }),
  run: async (args, out, { signal }) => {
    const refs = [args.ref, args['old-base'], args['new-base']].map(parseImageArg);
    const dst = parseImageArg(args.tag);
    if ((dst.transport === 'oci' && dst.digest !== undefined) || (dst.transport === 'docker' && dst.ref.digest !== undefined) || dst.transport === 'dir') {
      throw new OciToolError('USAGE', `rebase --tag ${args.tag}: expected oci:DIR[:TAG], docker://NAME[:TAG] or an archive`);
    }
    if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new OciToolError('USAGE', 'rebase: --concurrency must be a positive integer');
    const platform = platformArg(args.platform);
    const registry = await registryOpen(args);
    const progress = progressReporter(out, process.stderr, Date.now, signal);
    const { rebase } = await import('../../image/rebase.js');
    // --creds name one registry: the destination's when it is one, else the one registry the images are read from.
    const hosts = new Set([...refs, dst].flatMap((r) => (r.transport === 'docker' ? [r.ref.domain] : [])));
    const sameHost = hosts.size === 1;
    const desc = await watched(progress, (onProgress) => rebase(refs[0]!, refs[1]!, refs[2]!, dst, {
      signal,
      concurrency: args.concurrency,
      ...(platform ? { platform } : {}),
      ...(registry.insecure ? { insecure: true } : {}),
      ...(registry.credential && sameHost ? { srcCredential: registry.credential } : {}),
      ...(registry.credential && dst.transport === 'docker' ? { dstCredential: registry.credential } : {}),
      onProgress,
    }));
    return { reference: dst, descriptor: desc, wrote: true, fields: { ...progress.counts() } };
  },
});
