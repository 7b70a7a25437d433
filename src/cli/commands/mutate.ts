import { normalizePort, parseKeyValues } from '../../image/config.js';
import { OciToolError } from '../../util/errors.js';
import { createdSeconds, parseImageArg, platformArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';
import { progressReporter, watched } from '../progress.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { execForm } from './build.js';

const list = { type: 'string', array: true, default: [] as string[] } as const;

export default defineCommand({
  command: 'mutate <ref>',
  describe: "Change an image's config and annotations without touching its layers (in a registry only the manifest and config are read), written to --tag or back to REF",
  builder: (y) =>
    digestfileOption(registryOptions(y))
        .positional('ref', { type: 'string', demandOption: true, describe: 'the image to change: docker://HOST/REPO:TAG, oci:DIR:TAG, an archive…' })
        .option('tag', { type: 'string', describe: 'where the changed image goes (default: REF itself, whose tag then names the changed image)' })
        .option('label', { ...list, describe: 'KEY=VALUE in the config; repeatable' })
        .option('unset-label', { ...list, describe: 'KEY to remove from the labels; repeatable' })
        .option('env', { ...list, describe: 'KEY=VALUE; repeatable' })
        .option('unset-env', { ...list, describe: 'KEY to remove from the environment; repeatable' })
        .option('annotation', { ...list, describe: 'KEY=VALUE on the manifest (OCI only); repeatable' })
        .option('entrypoint', { type: 'string', array: true, describe: 'exec form: repeatable, one word each, or one JSON array (drops the inherited command, as in a Dockerfile)' })
        .option('cmd', { type: 'string', array: true, describe: 'exec form: repeatable, one word each, or one JSON array' })
        .option('user', { type: 'string', describe: 'USER[:GROUP] the container runs as' })
        .option('workdir', { type: 'string', describe: 'working directory of the container' })
        .option('expose', { ...list, describe: 'PORT[/tcp|udp|sctp]; repeatable' })
        .option('volume', { ...list, describe: 'PATH; repeatable' })
        .option('created', { type: 'string', describe: "the config's creation time (RFC 3339 or epoch seconds; default: kept)" })
        .option('platform', { type: 'string', describe: "from an index, change only this OS/ARCH[/VARIANT]'s image (default: every image)" })
        .option('concurrency', { type: 'number', default: 4, describe: 'blobs transferred at once (when --tag is elsewhere)' }),
  run: async (args, out, { signal }) => {
    // Every flag is checked before anything is read.
    const src = parseImageArg(args.ref);
    const dst = args.tag !== undefined ? parseImageArg(args.tag) : src;
    if (src.transport === 'dir' && args.tag === undefined) throw new OciToolError('USAGE', `mutate: ${args.ref}: dir: is read-only; give --tag`);
    if ((dst.transport === 'oci' && dst.digest !== undefined) || (dst.transport === 'docker' && dst.ref.digest !== undefined)) {
      throw new OciToolError('USAGE', `mutate: ${args.tag ?? args.ref}: a digest names the image as it is; give --tag with a tag to write the changed image to`);
    }
    if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new OciToolError('USAGE', 'mutate: --concurrency must be a positive integer');
    const labels = parseKeyValues(args.label, '--label');
    parseKeyValues(args.env, '--env');
    args.expose.forEach(normalizePort);
    const annotations = parseKeyValues(args.annotation, '--annotation');
    const entrypoint = execForm(args.entrypoint, '--entrypoint');
    const cmd = execForm(args.cmd, '--cmd');
    // Kept unless --created says otherwise (SOURCE_DATE_EPOCH is for what a build makes, not for an edit).
    const created = createdSeconds(args.created, '');
    const platform = platformArg(args.platform);
    for (const [flag, keys] of [['--unset-label', args['unset-label']], ['--unset-env', args['unset-env']]] as const) {
      for (const k of keys) if (k === '' || k.includes('=')) throw new OciToolError('USAGE', `${flag} ${JSON.stringify(k)}: expected a name, without =VALUE`);
    }
    const registry = await registryOpen(args);
    const progress = progressReporter(out, process.stderr, Date.now, signal);
    const { mutate } = await import('../../image/mutate.js');
    const desc = await watched(progress, (onProgress) => mutate(src, {
      to: dst,
      signal,
      concurrency: args.concurrency,
      ...(registry.insecure ? { insecure: true } : {}),
      // --creds go to the image's registry, and to the destination's only on that same host.
      ...(registry.credential && src.transport === 'docker' ? { srcCredential: registry.credential } : {}),
      ...(registry.credential && dst.transport === 'docker' && (src.transport !== 'docker' || src.ref.domain === dst.ref.domain) ? { dstCredential: registry.credential } : {}),
      ...(platform ? { platform } : {}),
      config: {
        env: args.env,
        labels,
        expose: args.expose,
        volumes: args.volume,
        ...(entrypoint ? { entrypoint } : {}),
        ...(cmd ? { cmd } : {}),
        ...(args.user !== undefined ? { user: args.user } : {}),
        ...(args.workdir !== undefined ? { workdir: args.workdir } : {}),
      },
      unsetLabels: args['unset-label'],
      unsetEnv: args['unset-env'],
      annotations,
      ...(created !== undefined ? { created } : {}),
      onProgress,
    }));
    return { reference: dst, descriptor: desc, wrote: true, fields: { ...progress.counts() } };
  },
});
