import { OciLayout } from '../../layout/layout.js';
import { parseLayoutArg } from '../args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'init <layout>',
  describe: 'Create an empty OCI image layout (DIR or oci:DIR)',
  builder: (y) => y.positional('layout', { type: 'string', demandOption: true, describe: 'directory to create' }),
  run: async (args, out) => {
    const ref = parseLayoutArg(args.layout);
    const layout = await OciLayout.init(ref.dir);
    out.info(`initialised OCI layout ${layout.dir}`);
    return { reference: ref };
  },
});
