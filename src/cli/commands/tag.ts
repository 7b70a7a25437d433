import { resolve } from 'node:path';
import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg } from '../args.js';
import { defineCommand } from '../command.js';

export default defineCommand({
  command: 'tag <src> <tag>',
  describe: 'Give an image a new tag in the same layout (TAG, or oci:DIR:TAG naming the same layout)',
  builder: (y) =>
    y
      .positional('src', { type: 'string', demandOption: true, describe: 'image reference, e.g. oci:DIR:v1 or oci:DIR@sha256:…' })
      .positional('tag', { type: 'string', demandOption: true, describe: 'new tag' }),
  run: async (args, out) => {
    const src = parseImageArg(args.src);
    if (src.transport !== 'oci') throw new OciToolError('UNSUPPORTED', `tag: ${args.src}: only OCI layouts can be tagged yet`);
    let tag = args.tag;
    if (tag.startsWith('oci:')) {
      const dst = parseImageArg(tag);
      if (dst.transport !== 'oci' || dst.tag === undefined) throw new OciToolError('USAGE', `tag: ${args.tag}: expected TAG or oci:DIR:TAG`);
      if (resolve(dst.dir) !== resolve(src.dir)) throw new OciToolError('USAGE', `tag: ${args.tag} names another layout than ${args.src}; use copy`);
      tag = dst.tag;
    } else {
      // Validate the tag through the reference grammar.
      const check = parseImageArg(`oci:${src.dir}:${tag}`);
      if (check.transport !== 'oci' || check.tag !== tag) throw new OciToolError('USAGE', `tag: invalid tag "${args.tag}"`);
    }
    const { store, reference } = await openStore(src);
    const desc = await store.resolve(reference ?? '');
    await store.tag(desc, tag);
    out.info(`tagged ${desc.digest} as ${tag}`);
    out.result(desc.digest);
  },
});
