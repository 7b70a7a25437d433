import { verifyLayout } from '../../layout/verify.js';
import { OciLayout } from '../../layout/layout.js';
import { OciToolError } from '../../util/errors.js';
import { parseLayoutArg } from '../args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'verify <layout>',
  describe: 'Check a layout: every reachable blob present with the right size and digest, documents well-formed',
  builder: (y) =>
    y
      .positional('layout', { type: 'string', demandOption: true, describe: 'DIR or oci:DIR' })
      .option('diff-ids', { type: 'boolean', default: false, describe: "also decompress layers and check them against the config's diff_ids" }),
  run: async (args, out) => {
    const ref = parseLayoutArg(args.layout);
    const layout = await OciLayout.open(ref.dir);
    const result = await verifyLayout(layout, { diffIds: args['diff-ids'] });
    for (const p of result.problems) {
      process.stderr.write(`ocitool: verify: ${p.message}\n`);
      out.event('problem', { ...p });
    }
    for (const d of result.unreferenced) out.note('unreferenced', { digest: d }, `unreferenced blob ${d}`);
    if (result.problems.length > 0) {
      throw new OciToolError('VERIFY_FAILED', `verify: ${layout.name}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} found`);
    }
    return {
      reference: ref,
      line: `${layout.name}: ${result.checked} blobs verified, ${result.unreferenced.length} unreferenced`,
      fields: { checked: result.checked, unreferenced: result.unreferenced.length, problems: 0 },
    };
  },
});
