import { hostPlatform, parsePlatform } from '../../spec/platform.js';
import { unpack } from '../../unpack/image.js';
import { parseIdMapping } from '../../unpack/unpack.js';
import { parseImageArg } from '../args.js';
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
      .option('uid-map', { type: 'string', describe: 'CONTAINER:HOST:SIZE (repeatable)' })
      .option('gid-map', { type: 'string', describe: 'CONTAINER:HOST:SIZE (repeatable)' })
      .option('rootless', { type: 'boolean', describe: 'record ownership instead of applying it, make no device nodes (default when not root)' })
      .option('skip-unsafe', { type: 'boolean', default: false, describe: 'skip entries that would reach outside DIR, with a warning, instead of failing' })
      .option('state', { type: 'boolean', default: true, describe: 'write DIR.ocitool-state.json for repack (--no-state to skip)' }),
  run: async (args, out, { signal }) => {
    // Repeated flags arrive as an array (yargs' duplicate-arguments-array); an `array` option would
    // also swallow the positional arguments after it.
    const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
    const uidMap = list(args['uid-map']).map((s) => parseIdMapping(s, '--uid-map'));
    const gidMap = list(args['gid-map']).map((s) => parseIdMapping(s, '--gid-map'));
    const src = parseImageArg(args.src);
    const result = await unpack(src, args.dir, {
      ...(await registryOpen(args)),
      signal,
      platform: args.platform !== undefined ? parsePlatform(args.platform) : hostPlatform(),
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
