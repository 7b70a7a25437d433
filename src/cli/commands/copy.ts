import { copyImage } from '../../image/copy-image.js';
import { parseCreds } from '../../registry/auth/credentials.js';
import type { ImageReference } from '../../reference/transport.js';
import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg } from '../args.js';
import { defineCommand } from '../command.js';

/** The tag a destination reference names (a digest reference stores untagged). */
function destTag(ref: ImageReference): string | undefined {
  switch (ref.transport) {
    case 'oci':
      return ref.digest ? undefined : ref.tag;
    case 'docker':
      return ref.ref.digest ? undefined : ref.ref.tag;
    default:
      return undefined;
  }
}

export default defineCommand({
  command: 'copy <src> <dst>',
  describe: 'Copy an image between any two places (layouts, registries), blobs deduplicated and verified',
  builder: (y) =>
    y
      .positional('src', { type: 'string', demandOption: true })
      .positional('dst', { type: 'string', demandOption: true })
      .option('src-creds', { type: 'string', describe: 'USER:PASSWORD for the source registry' })
      .option('dest-creds', { type: 'string', describe: 'USER:PASSWORD for the destination registry' })
      .option('insecure', { type: 'boolean', default: false, describe: 'allow plain HTTP to registries (loopback hosts always may)' })
      .option('concurrency', { type: 'number', default: 4, describe: 'blobs transferred at once' }),
  run: async (args, out) => {
    const srcRef = parseImageArg(args.src);
    const dstRef = parseImageArg(args.dst);
    if (dstRef.transport === 'oci' && dstRef.digest) throw new OciToolError('USAGE', `copy: ${args.dst}: a destination is named by a tag, not a digest`);
    const src = await openStore(srcRef, { insecure: args.insecure, ...(args['src-creds'] ? { credential: parseCreds(args['src-creds']) } : {}) });
    const dst = await openStore(dstRef, { create: true, insecure: args.insecure, ...(args['dest-creds'] ? { credential: parseCreds(args['dest-creds']) } : {}) });
    let copied = 0;
    let skipped = 0;
    const tag = destTag(dstRef);
    const root = await copyImage(src.store, src.reference ?? '', dst.store, {
      concurrency: args.concurrency,
      ...(tag !== undefined ? { tag } : {}),
      onNode: (d, what) => {
        if (what === 'copied') copied++;
        else skipped++;
        out.info(`${what} ${d.digest} (${d.mediaType})`);
      },
    });
    out.info(`${copied} copied, ${skipped} already there`);
    out.result(root.digest);
  },
});
