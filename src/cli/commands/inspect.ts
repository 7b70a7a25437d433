import { fetchBytes } from '../../content/store.js';
import { fetchManifest } from '../../content/graph.js';
import { resolveImageManifest } from '../../image/resolve.js';
import { isImageConfigType, isIndexType } from '../../spec/media-types.js';
import type { Descriptor } from '../../spec/types.js';
import { parseJson } from '../../spec/parse.js';
import { openStore, type OpenedStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { parseImageArg, platformArg } from '../args.js';
import { defineCommand, type GlobalFlags } from '../command.js';
import type { Output } from '../output.js';

interface InspectArgs {
  ref: string;
  raw: boolean;
  config: boolean;
  platform?: string;
}

export default defineCommand({
  command: 'inspect <ref>',
  describe: 'Print an image manifest (an index resolves to one platform), its config, or the raw bytes',
  builder: (y) =>
    registryOptions(
    y
      .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, e.g. oci:DIR:TAG' })
      .option('raw', { type: 'boolean', default: false, describe: 'print the document exactly as stored (an index is not resolved unless --platform is given)' })
      .option('config', { type: 'boolean', default: false, describe: 'print the image config instead of the manifest' })
      .option('platform', { type: 'string', describe: 'OS/ARCH[/VARIANT] to pick from an index (default: this host)' })
    ),
  run: async (args, out) => {
    const ref = parseImageArg(args.ref);
    platformArg(args.platform); // checked before the image is looked up
    const opened = await openStore(ref, await registryOpen(args));
    try {
      return { reference: ref, printed: true, descriptor: await show(opened, args, out) };
    } finally {
      await opened.close?.();
    }
  },
});

/**
 * Prints the document (in --json one `manifest`, `index` or `config` event with it as `document`) and
 * returns the manifest or index shown (the root: an index resolved to a platform gives that manifest).
 */
async function show({ store, reference }: OpenedStore, args: GlobalFlags & InspectArgs, out: Output): Promise<Descriptor> {
  const platform = platformArg(args.platform);
  const root = await store.resolve(reference ?? '');
  const print = (what: string, d: Descriptor, bytes: Uint8Array): void => {
    if (args.json) out.event(what, { digest: d.digest, mediaType: d.mediaType, size: d.size, document: parseJson(bytes, `${args.ref} ${what}`) });
    else if (args.raw) out.raw(bytes);
    else out.raw(`${JSON.stringify(parseJson(bytes, `${args.ref} ${what}`), null, 2)}\n`);
  };
  if (args.raw && !args.config && platform === undefined) {
    print(isIndexType(root.mediaType) ? 'index' : 'manifest', root, (await fetchManifest(store, root)).bytes);
    return root;
  }
  const { manifest } = await resolveImageManifest(store, root, { ...(platform ? { platform } : {}), what: args.ref });
  if (args.config) {
    if (manifest.parsed.kind !== 'manifest') throw new OciToolError('UNSUPPORTED', `${args.ref}: a ${manifest.parsed.mediaType} has no image config`);
    const cfg = manifest.parsed.manifest.config;
    if (!isImageConfigType(cfg.mediaType) && !args.raw) {
      throw new OciToolError('UNSUPPORTED', `${args.ref}: config ${cfg.digest} is ${cfg.mediaType}, not an image config (use --raw)`);
    }
    print('config', cfg, await fetchBytes(store, cfg));
  } else print('manifest', manifest.descriptor, manifest.bytes);
  return manifest.descriptor;
}
