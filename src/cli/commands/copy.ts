import { copyImage } from '../../image/copy-image.js';
import { blobLocations } from '../../registry/blob-locations.js';
import type { Descriptor } from '../../spec/types.js';
import { hostPlatform, parsePlatform } from '../../spec/platform.js';
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

type Direction = 'any' | 'push' | 'pull';

function makeCopyCommand(verb: 'copy' | 'push' | 'pull', describe: string, direction: Direction) {
  return defineCommand({
    command: `${verb} <src> <dst>`,
    describe,
    builder: (y) =>
      y
        .positional('src', { type: 'string', demandOption: true })
        .positional('dst', { type: 'string', demandOption: true })
        .option('src-creds', { type: 'string', describe: 'USER:PASSWORD for the source registry' })
        .option('dest-creds', { type: 'string', describe: 'USER:PASSWORD for the destination registry' })
        .option('creds', { type: 'string', describe: 'USER:PASSWORD for the registry (push: destination, pull: source)' })
        .option('insecure', { type: 'boolean', default: false, describe: 'allow plain HTTP to registries (loopback hosts always may)' })
        .option('concurrency', { type: 'number', default: 4, describe: 'blobs transferred at once' })
        .option('platform', { type: 'string', describe: 'from an index, copy only this OS/ARCH[/VARIANT] (pull default: this host)' })
        .option('all-platforms', { type: 'boolean', default: direction !== 'pull', describe: 'copy a whole index (default for copy and push; pull picks one platform)' }),
    run: async (args, out) => {
      const srcRef = parseImageArg(args.src);
      const dstRef = parseImageArg(args.dst);
      if (direction === 'push' && dstRef.transport !== 'docker') throw new OciToolError('USAGE', `push: ${args.dst}: the destination must be a registry (docker://…); use copy`);
      if (direction === 'pull' && srcRef.transport !== 'docker') throw new OciToolError('USAGE', `pull: ${args.src}: the source must be a registry (docker://…); use copy`);
      if (dstRef.transport === 'oci' && dstRef.digest) throw new OciToolError('USAGE', `${verb}: ${args.dst}: a destination is named by a tag, not a digest`);
      const srcCreds = args['src-creds'] ?? (direction === 'pull' ? args.creds : undefined);
      const dstCreds = args['dest-creds'] ?? (direction === 'push' ? args.creds : undefined);
      const src = await openStore(srcRef, { insecure: args.insecure, ...(srcCreds ? { credential: parseCreds(srcCreds) } : {}) });
      let mounted = 0;
      const onMount = (d: Descriptor, from: string): void => {
        mounted++;
        out.info(`mounted ${d.digest} from ${from}`);
      };
      const dst = await openStore(dstRef, { create: true, insecure: args.insecure, onMount, ...(dstCreds ? { credential: parseCreds(dstCreds) } : {}) });
      let copied = 0;
      let skipped = 0;
      const tag = destTag(dstRef);
      const platform = args.platform !== undefined ? parsePlatform(args.platform) : args['all-platforms'] ? undefined : hostPlatform();
      const root = await copyImage(src.store, src.reference ?? '', dst.store, {
        concurrency: args.concurrency,
        ...(platform ? { platform } : {}),
        ...(tag !== undefined ? { tag } : {}),
        onNode: (d, what) => {
          if (what === 'copied') copied++;
          else skipped++;
          out.info(`${what} ${d.digest} (${d.mediaType})`);
        },
      });
      await blobLocations.save().catch(() => undefined); // a cache: failing to save loses nothing
      out.info(`${copied - mounted} copied, ${mounted} mounted, ${skipped} already there`);
      out.result(root.digest);
    },
  });
}

export const copyCommand = makeCopyCommand('copy', 'Copy an image between any two places (layouts, registries), blobs deduplicated and verified', 'any');
export const pushCommand = makeCopyCommand('push', 'Copy an image to a registry (copy, checked that the destination is docker://)', 'push');
export const pullCommand = makeCopyCommand('pull', 'Copy an image from a registry (copy, checked that the source is docker://)', 'pull');
