import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg } from '../args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'rm <ref..>',
  describe: 'Remove tags (oci:DIR:TAG) or untag every entry of a digest (oci:DIR@DIGEST); blobs stay until gc',
  builder: (y) => y.positional('ref', { type: 'string', array: true, demandOption: true, describe: 'image references' }),
  run: async (args, out) => {
    let removedCount = 0;
    for (const r of args.ref) {
      const ref = parseImageArg(r);
      if (ref.transport !== 'oci') throw new OciToolError('UNSUPPORTED', `rm: ${r}: only OCI layouts are supported yet`);
      const name = ref.digest ?? ref.tag;
      if (name === undefined) throw new OciToolError('USAGE', `rm: ${r}: name a tag (oci:DIR:TAG) or a digest (oci:DIR@DIGEST)`);
      const { layout } = await openStore(ref);
      const removed = await layout!.untag(name);
      for (const d of removed) out.note('removed', { reference: r, digest: d.digest, mediaType: d.mediaType, size: d.size }, `removed ${name} (${d.digest})`);
      removedCount += removed.length;
    }
    return { fields: { removed: removedCount } };
  },
});
