import { repack } from '../../unpack/repack.js';
import { checkCompressionLevel, LEVELS_HELP } from '../../layer/levels.js';
import { createdSeconds, parseImageArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';
import { registryOptions } from '../registry-args.js';

export default defineCommand({
  command: 'repack <dir>',
  describe: 'Append the changes made to an unpacked root filesystem as one layer (no root, no mtree needed)',
  builder: (y) =>
    digestfileOption(registryOptions(y))
      .positional('dir', { type: 'string', demandOption: true, describe: 'a root filesystem made by ocitool unpack' })
      .option('tag', { type: 'string', demandOption: true, describe: 'where the new image goes: oci:DIR:TAG, docker://…, archives' })
      .option('created', { type: 'string', describe: 'creation time for created/history and the mtime clamp, as for build: RFC 3339 or epoch seconds (default SOURCE_DATE_EPOCH, else now)' })
      .option('compression', { choices: ['gzip', 'zstd', 'none'] as const, default: 'gzip' as const, describe: 'compression of the new layer' })
      .option('compression-level', { type: 'number', describe: `level of --compression: ${LEVELS_HELP}` }),
  run: async (args, out, { signal }) => {
    checkCompressionLevel(args.compression, args['compression-level']);
    const epoch = createdSeconds(args.created);
    const dst = parseImageArg(args.tag);
    const result = await repack(args.dir, dst, {
      ...(epoch !== undefined ? { created: epoch } : {}),
      compression: args.compression,
      ...(args['compression-level'] !== undefined ? { level: args['compression-level'] } : {}),
      insecure: args.insecure,
      signal,
      warn: (m) => out.warn(m),
    });
    const s = result.stats;
    const layer = result.layers[0]?.descriptor;
    out.note('layer', { ...(layer ? { digest: layer.digest, mediaType: layer.mediaType, size: layer.size } : {}), ...s }, `layer ${layer?.digest ?? ''}: +${s.added} ~${s.changed} -${s.deleted}${s.opaque ? ` (${s.opaque} opaque)` : ''}`);
    return { reference: dst, descriptor: result.manifest, wrote: true, fields: { ...s } };
  },
});
