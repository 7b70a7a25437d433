import type { Argv } from 'yargs';
import { isRemoteRepository } from '../../content/store.js';
import { createIndex, planIndex, type IndexSource } from '../../image/index-build.js';
import type { ImageReference } from '../../reference/transport.js';
import type { Credential } from '../../registry/auth/credentials.js';
import type { Descriptor } from '../../spec/types.js';
import { destinationTag } from '../../transport/copy.js';
import { parseKeyValues } from '../../image/config.js';
import { OciLayout } from '../../layout/layout.js';
import { openStore, type OpenedStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg, repeated } from '../args.js';
import { commandHandler, defineCommand, digestfileOption, type GlobalFlags, type Outcome } from '../command.js';
import type { Output } from '../output.js';
import { registryOpen, registryOptions, type RegistryFlags } from '../registry-args.js';

interface IndexArgs {
  tag: string;
  images: string[];
  format: 'oci' | 'docker';
  annotation?: string | string[];
  'preserve-digests': boolean;
}

async function runIndex(args: GlobalFlags & IndexArgs & RegistryFlags, out: Output, add: boolean, signal: AbortSignal): Promise<Outcome> {
  const dst = parseImageArg(args.tag);
  const tag = dst.transport === 'oci' || dst.transport === 'docker' ? destinationTag(dst) : undefined;
  if (tag === undefined) throw new OciToolError('USAGE', `--tag ${args.tag}: expected oci:DIR:TAG or docker://HOST/REPO:TAG`);
  // Every flag is checked before an image is opened.
  const annotations = parseKeyValues(repeated(args.annotation), '--annotation');
  const { insecure, credential } = await registryOpen(args);
  // --creds are the destination registry's, and a source's only on that same host (or when the
  // destination is no registry): a password never goes to another registry.
  const credFor = (ref: ImageReference): { credential?: Credential } =>
    credential && ref.transport === 'docker' && (dst.transport !== 'docker' || dst.ref.domain === ref.ref.domain) ? { credential } : {};
  const images: IndexSource[] = [];
  const opened: OpenedStore[] = [];
  try {
    for (const name of args.images) {
      const ref = parseImageArg(name);
      const source = await openStore(ref, { insecure, ...credFor(ref) });
      opened.push(source);
      images.push({ store: source.store, descriptor: await source.store.resolve(source.reference ?? ''), name });
    }
    // Read and checked before the destination is created or touched: a refused index writes nothing.
    const plan = await planIndex(images, { format: args.format, add });
    const common = { tag, images, add, format: args.format, annotations, plan, signal, ...(args['preserve-digests'] ? { preserveDigests: true } : {}) };
    let desc: Descriptor;
    if (dst.transport === 'oci') {
      desc = await createIndex({ ...common, destination: add ? await OciLayout.open(dst.dir) : await OciLayout.init(dst.dir) });
    } else {
      const to = await openStore(dst, { create: true, insecure, ...credFor(dst) });
      // Sources in the same registry: their repositories are the first places to mount blobs from.
      for (const s of opened) if (isRemoteRepository(s.store) && isRemoteRepository(to.store) && s.store.host === to.store.host) to.store.addMountSource(s.store.repository);
      desc = await createIndex({ ...common, destination: to.store });
    }
    out.info(`index ${tag} holds ${images.length} new image(s)`);
    return { reference: dst, descriptor: desc, fields: { added: images.length } };
  } finally {
    for (const s of opened) await s.close?.();
  }
}

const shape = (y: Argv<GlobalFlags>): Argv<GlobalFlags & IndexArgs & RegistryFlags> =>
  digestfileOption(registryOptions(y))
    .positional('images', { type: 'string', array: true, demandOption: true, describe: 'image references (one per platform; an index adds all its entries)' })
    .option('tag', { type: 'string', demandOption: true, describe: 'the index to write, oci:DIR:TAG or docker://HOST/REPO:TAG' })
    .option('format', { choices: ['oci', 'docker'] as const, default: 'oci' as const, describe: 'OCI index or Docker manifest list' })
    .option('annotation', { type: 'string', describe: 'KEY=VALUE on the index; repeatable' })
    .option('preserve-digests', { type: 'boolean', default: false, describe: 'into oci:, keep Docker schema 2 images as they are in an OCI index instead of converting them to OCI' }) as unknown as Argv<GlobalFlags & IndexArgs & RegistryFlags>;

export default defineCommand({
  command: 'index',
  describe: 'Assemble multi-platform image indexes (index create, index add)',
  builder: (y) =>
    y
      .command('create <images..>', 'Write an index of the given per-platform images, platform from each config', shape, commandHandler<IndexArgs & RegistryFlags>('index create', (a, out, ctx) => runIndex(a, out, false, ctx.signal)) as (a: unknown) => Promise<void>)
      .command('add <images..>', 'Add images to the index at --tag (replacing entries of the same platform)', shape, commandHandler<IndexArgs & RegistryFlags>('index add', (a, out, ctx) => runIndex(a, out, true, ctx.signal)) as (a: unknown) => Promise<void>)
      .demandCommand(1, 'name an index action: create or add') as unknown as Argv<GlobalFlags>,
  run: async () => undefined,
});
