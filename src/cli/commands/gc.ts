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
    const ref = parseLayoutArg(args.layout);
    const layout = await OciLayout.open(ref.dir);
    const result = await gc(layout, { dryRun: args['dry-run'] });
    const verb = args['dry-run'] ? 'would remove' : 'removed';
    for (const d of result.referrersRemoved) out.note('referrer-removed', { digest: d.digest, artifactType: d.artifactType, dryRun: args['dry-run'] }, `${verb} the index.json entry of referrer ${d.digest}${d.artifactType ? ` (${d.artifactType})` : ''}: its subject is gone`);
    for (const b of result.removed) out.note('removed', { digest: b.digest, size: b.size, dryRun: args['dry-run'] }, `${verb} ${b.digest} (${humanSize(b.size)})`);
    const { removed, referrersRemoved, ...counts } = result;
    const referrers = referrersRemoved.length > 0 ? `, ${referrersRemoved.length} referrer entries whose subject is gone` : '';
    return {
      reference: ref,
      line: `${verb} ${removed.length} blobs (${humanSize(result.freedBytes)}) and ${result.tempFilesRemoved} temp files${referrers}; kept ${result.kept} blobs${result.leased > 0 ? ` (${result.leased} held by writers' leases)` : ''}`,
      fields: { removed: removed.length, referrersRemoved: referrersRemoved.length, ...counts, dryRun: args['dry-run'] },
    };
  },
});
