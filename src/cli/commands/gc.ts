import { gc } from '../../content/gc.js';
import { OciLayout } from '../../layout/layout.js';
import { parseLayoutArg } from '../args.js';
import { defineCommand } from '../command.js';
import { humanSize } from '../output.js';

export default defineCommand({
  command: 'gc <layout>',
  describe: 'Remove blobs that nothing in index.json reaches, and stale temp files',
  builder: (y) =>
    y
      .positional('layout', { type: 'string', demandOption: true, describe: 'DIR or oci:DIR' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'report what would be removed' }),
  run: async (args, out) => {
    const layout = await OciLayout.open(parseLayoutArg(args.layout).dir);
    const result = await gc(layout, { dryRun: args['dry-run'] });
    if (args.json) {
      out.jsonOut(result);
      return;
    }
    const verb = args['dry-run'] ? 'would remove' : 'removed';
    for (const b of result.removed) out.info(`${verb} ${b.digest} (${humanSize(b.size)})`);
    out.result(`${verb} ${result.removed.length} blobs (${humanSize(result.freedBytes)}) and ${result.tempFilesRemoved} temp files; kept ${result.kept} blobs${result.leased > 0 ? ` (${result.leased} held by writers' leases)` : ''}`);
  },
});
