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
    const layout = await OciLayout.open(parseLayoutArg(args.layout).dir);
    const result = await verifyLayout(layout, { diffIds: args['diff-ids'] });
    if (args.json) out.jsonOut(result);
    else {
      for (const p of result.problems) process.stderr.write(`ocitool: verify: ${p.message}\n`);
      for (const d of result.unreferenced) out.info(`unreferenced blob ${d}`);
    }
    if (result.problems.length > 0) {
      throw new OciToolError('VERIFY_FAILED', `verify: ${layout.name}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} found`);
    }
    if (!args.json) out.result(`${layout.name}: ${result.checked} blobs verified, ${result.unreferenced.length} unreferenced`);
  },
});
