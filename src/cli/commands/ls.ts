import { Annotation } from '../../spec/types.js';
import { formatPlatform } from '../../spec/platform.js';
import { MediaType } from '../../spec/media-types.js';
import { openStore, type OpenedStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { canListImages, canListTags } from '../../content/store.js';
import type { ImageReference } from '../../reference/transport.js';
import { parseImageArg } from '../args.js';
import { defineCommand, type GlobalFlags } from '../command.js';
import { humanSize, table, type Output } from '../output.js';

const SHORT_TYPE: Record<string, string> = {
  [MediaType.OciManifest]: 'oci-manifest',
  [MediaType.OciIndex]: 'oci-index',
  [MediaType.DockerManifest]: 'docker-manifest',
  [MediaType.DockerManifestList]: 'docker-list',
  [MediaType.DockerSchema1]: 'schema1',
  [MediaType.DockerSchema1Signed]: 'schema1-signed',
};

export default defineCommand({
  command: 'ls <layout>',
  describe: 'List the tags and digests of a layout, or the tags of a registry repository',
  builder: (y) =>
    registryOptions(
    y
      .positional('layout', { type: 'string', demandOption: true, describe: 'DIR, oci:DIR, oci-archive:FILE, docker-archive:FILE, or docker://HOST/REPO (its tags)' })
    ),
  run: async (args, out) => {
    const ref = parseImageArg(args.layout);
    const opened = await openStore(ref, await registryOpen(args));
    try {
      return { reference: repository(ref), printed: true, fields: { count: await list(opened, args, out) } };
    } finally {
      await opened.close?.();
    }
  },
});

/** What is listed: a registry's repository (not the tag `latest` its reference defaults to). */
function repository(ref: ImageReference): ImageReference {
  if (ref.transport !== 'docker') return ref;
  const { tag: _t, digest: _d, ...name } = ref.ref;
  return { transport: 'docker', ref: name };
}

/** Prints the entries (one `tag` or `image` event each in --json) and returns how many. */
async function list({ layout, store }: OpenedStore, args: GlobalFlags & { layout: string }, out: Output): Promise<number> {
  if (canListTags(store)) {
    const tags = await store.listTags();
    for (const t of tags) out.item('tag', { tag: t }, t);
    return tags.length;
  }
  let entries;
  if (layout) entries = (await layout.readIndex()).manifests;
  else if (canListImages(store)) entries = await store.list();
  else throw new OciToolError('UNSUPPORTED', `ls: ${args.layout}: cannot be listed`);
  if (args.json || args.quiet) {
    for (const d of entries) {
      const fields = {
        tag: d.annotations?.[Annotation.RefName] ?? null,
        digest: d.digest,
        mediaType: d.mediaType,
        size: d.size,
        ...(d.platform ? { platform: formatPlatform(d.platform) } : {}),
        ...(d.annotations ? { annotations: d.annotations } : {}),
      };
      out.item('image', fields, d.annotations?.[Annotation.RefName] ?? d.digest);
    }
    return entries.length;
  }
  const rows = [['TAG', 'DIGEST', 'TYPE', 'SIZE', 'PLATFORM']];
  for (const d of entries) {
    rows.push([
      d.annotations?.[Annotation.RefName] ?? '<none>',
      d.digest,
      SHORT_TYPE[d.mediaType] ?? d.mediaType,
      humanSize(d.size),
      d.platform ? formatPlatform(d.platform) : '',
    ]);
  }
  for (const line of table(rows)) out.result(line.trimEnd());
  return entries.length;
}
