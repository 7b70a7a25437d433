import { resolveImageManifest } from '../../image/resolve.js';
import { openStore } from '../../transport/open.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { parseImageArg, platformArg } from '../args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'digest <ref>',
  describe: "Print the digest of an image's manifest (or index), nothing else",
  builder: (y) =>
    registryOptions(
      y
        .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. docker://HOST/REPO:TAG or oci:DIR:TAG' })
        .option('platform', { type: 'string', describe: "OS/ARCH[/VARIANT]: the digest of that platform's manifest in an index (default: the index's own digest)" }),
    ),
  run: async (args) => {
    const ref = parseImageArg(args.ref);
    const platform = platformArg(args.platform);
    const { store, reference, close } = await openStore(ref, await registryOpen(args));
    try {
      const root = await store.resolve(reference ?? '');
      const descriptor = platform ? (await resolveImageManifest(store, root, { platform, what: args.ref })).manifest.descriptor : root;
      return { reference: ref, descriptor };
    } finally {
      await close?.();
    }
  },
});
