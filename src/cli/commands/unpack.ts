import { readdir } from 'node:fs/promises';
import { hostPlatform, parsePlatform } from '../../spec/platform.js';
import { OciToolError } from '../../util/errors.js';
import { unpack } from '../../unpack/image.js';
import { parseIdMapping } from '../../unpack/unpack.js';
import { parseImageArg, repeated } from '../args.js';
import { defineCommand } from '../command.js';
import { registryOpen, registryOptions } from '../registry-args.js';

export default defineCommand({
  command: 'unpack <src> <dir>',
  describe: 'Unpack an image into a root filesystem (whiteouts, links, modes, times; never touching anything outside DIR)',
  builder: (y) =>
    registryOptions(y)
      .positional('src', { type: 'string', demandOption: true, describe: 'image reference (oci:DIR:TAG, docker://…, archives)' })
      .positional('dir', { type: 'string', demandOption: true, describe: 'the root filesystem to make (must not exist, or be empty)' })
      .option('platform', { type: 'string', describe: 'from an index, this OS/ARCH[/VARIANT] (default: this host)' })
      .option('uid-map', { type: 'string', describe: 'CONTAINER:HOST:SIZE: map these user ids; repeatable' })
      .option('gid-map', { type: 'string', describe: 'CONTAINER:HOST:SIZE: map these group ids; repeatable' })
      .option('rootless', { type: 'boolean', describe: 'record ownership instead of applying it, make no device nodes (default when not root)' })
      .option('skip-unsafe', { type: 'boolean', default: false, describe: 'skip entries that would reach outside DIR, with a warning, instead of failing' })
      .option('state', { type: 'boolean', default: true, describe: 'write DIR.ocitool-state.json for repack (--no-state to skip)' }),
  run: async (args, out, { signal }) => {
    const uidMap = repeated(args['uid-map']).map((s) => parseIdMapping(s, '--uid-map'));
    const gidMap = repeated(args['gid-map']).map((s) => parseIdMapping(s, '--gid-map'));
    const platform = args.platform !== undefined ? parsePlatform(args.platform) : hostPlatform();
    // DIR is checked before the image is looked up (the unpack checks it again as it starts).
    const inDir = await readdir(args.dir).catch(() => []);
    if (inDir.length > 0) throw new OciToolError('USAGE', `unpack: ${args.dir} is not empty`);
    const src = parseImageArg(args.src);
    const result = await unpack(src, args.dir, {
      ...(await registryOpen(args)),
      signal,
      platform,
      ...(uidMap.length ? { uidMap } : {}),
      ...(gidMap.length ? { gidMap } : {}),
      ...(args.rootless !== undefined ? { rootless: args.rootless } : {}),
      onUnsafe: args['skip-unsafe'] ? 'skip' : 'fail',
      state: args.state,
      warn: (m) => out.warn(m),
      onLayer: (i, l) => out.note('layer', { index: i, digest: l.digest, mediaType: l.mediaType, size: l.size }, `layer ${i + 1}: ${l.digest}`),
    });
    const { manifest, ...rest } = result;
    return { reference: src, descriptor: manifest, fields: { dir: args.dir, ...rest } };
  },
});
