import { isTagger } from '../../content/store.js';
import { resolve } from 'node:path';
import { registryOpen, registryOptions } from '../registry-args.js';
import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import type { ImageReference } from '../../reference/transport.js';
import { parseImageArg } from '../args.js';
import { defineCommand, digestfileOption } from '../command.js';

const DOCKER_TAG = /^[\w][\w.-]{0,127}$/;

/** The reference the new tag makes (the same place, `tag` instead of the source's tag or digest). */
function retagged(src: ImageReference, tag: string): ImageReference {
  if (src.transport === 'oci') return { transport: 'oci', dir: src.dir, tag };
  if (src.transport !== 'docker') return src;
  const { digest: _d, ...name } = src.ref;
  return { transport: 'docker', ref: { ...name, tag } };
}

export default defineCommand({
  command: 'tag <src> <tag>',
  describe: 'Give an image a new tag in the same place: a layout (TAG or oci:DIR:TAG) or a registry repository (TAG or docker://SAME/REPO:TAG)',
  builder: (y) =>
    registryOptions(
    digestfileOption(y)
      .positional('src', { type: 'string', demandOption: true, describe: 'image reference, e.g. oci:DIR:v1, oci:DIR@sha256:…, docker://HOST/REPO:v1' })
      .positional('tag', { type: 'string', demandOption: true, describe: 'the new tag: TAG, oci:DIR:TAG (the same layout) or docker://HOST/REPO:TAG (the same repository)' })
    ),
  run: async (args, out) => {
    const src = parseImageArg(args.src);
    let tag = args.tag;
    if (src.transport === 'oci') {
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
    } else if (src.transport === 'docker') {
      if (tag.startsWith('docker://')) {
        const dst = parseImageArg(tag);
        if (dst.transport !== 'docker' || dst.ref.domain !== src.ref.domain || dst.ref.path !== src.ref.path || dst.ref.tag === undefined || dst.ref.digest) {
          throw new OciToolError('USAGE', `tag: ${args.tag}: expected TAG or docker://${src.ref.domain}/${src.ref.path}:TAG (the same repository; use copy for another)`);
        }
        tag = dst.ref.tag;
      } else if (!DOCKER_TAG.test(tag)) throw new OciToolError('USAGE', `tag: invalid tag "${args.tag}"`);
    } else throw new OciToolError('UNSUPPORTED', `tag: ${args.src}: only layouts and registries can be tagged`);
    // A layout is opened as it is (never created); a registry with push access.
    const { store, reference } = await openStore(src, { create: src.transport === 'docker', ...(await registryOpen(args)) });
    if (!isTagger(store)) throw new OciToolError('UNSUPPORTED', `tag: ${args.src}: cannot be tagged`);
    const desc = await store.resolve(reference ?? '');
    await store.tag(desc, tag);
    out.info(`tagged ${desc.digest} as ${tag}`);
    return { reference: retagged(src, tag), descriptor: desc, fields: { tag } };
  },
});
