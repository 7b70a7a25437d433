import type { Argv } from 'yargs';
import { createIndex, type IndexSource } from '../../image/index-build.js';
import { parseKeyValues } from '../../image/config.js';
import { OciLayout } from '../../layout/layout.js';
import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { parseImageArg } from '../args.js';
import { commandHandler, defineCommand, digestfileOption, type GlobalFlags, type Outcome } from '../command.js';
import type { Output } from '../output.js';

interface IndexArgs {
  tag: string;
  images: string[];
  format: 'oci' | 'docker';
  annotation: string[];
}

async function runIndex(args: GlobalFlags & IndexArgs, out: Output, add: boolean): Promise<Outcome> {
  const dst = parseImageArg(args.tag);
  if (dst.transport !== 'oci' || dst.tag === undefined) throw new OciToolError('USAGE', `--tag ${args.tag}: expected oci:DIR:TAG`);
  const images: IndexSource[] = [];
  for (const ref of args.images) {
    const { store, reference } = await openStore(parseImageArg(ref));
    images.push({ store, descriptor: await store.resolve(reference ?? ''), name: ref });
  }
  const destination = add ? await OciLayout.open(dst.dir) : await OciLayout.init(dst.dir);
  const desc = await createIndex({ destination, tag: dst.tag, images, add, format: args.format, annotations: parseKeyValues(args.annotation, '--annotation') });
  out.info(`index ${dst.tag} holds ${images.length} new image(s)`);
  return { reference: dst, descriptor: desc, fields: { added: images.length } };
}

const shape = (y: Argv<GlobalFlags>): Argv<GlobalFlags & IndexArgs> =>
  digestfileOption(y)
    .positional('images', { type: 'string', array: true, demandOption: true, describe: 'image references (one per platform; an index adds all its entries)' })
    .option('tag', { type: 'string', demandOption: true, describe: 'the index to write, oci:DIR:TAG' })
    .option('format', { choices: ['oci', 'docker'] as const, default: 'oci' as const, describe: 'OCI index or Docker manifest list' })
    .option('annotation', { type: 'string', array: true, default: [] as string[], describe: 'KEY=VALUE on the index' }) as unknown as Argv<GlobalFlags & IndexArgs>;

export default defineCommand({
  command: 'index',
  describe: 'Assemble multi-platform image indexes (index create, index add)',
  builder: (y) =>
    y
      .command('create <images..>', 'Write an index of the given per-platform images, platform from each config', shape, commandHandler<IndexArgs>('index create', (a, out) => runIndex(a, out, false)) as (a: unknown) => Promise<void>)
      .command('add <images..>', 'Add images to the index at --tag (replacing entries of the same platform)', shape, commandHandler<IndexArgs>('index add', (a, out) => runIndex(a, out, true)) as (a: unknown) => Promise<void>)
      .demandCommand(1, 'name an index action: create or add') as unknown as Argv<GlobalFlags>,
  run: async () => undefined,
});
