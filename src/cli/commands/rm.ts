import { openStore } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import { parseImageArg } from '../args.js';
import { defineCommand } from '../command.js';
import type { ImageReference } from '../../reference/index.js';

export default defineCommand({
  command: 'rm <ref..>',
  describe:
    'Remove tags or images: oci:DIR:TAG removes the tag, oci:DIR@DIGEST every entry of that digest (blobs stay until gc); docker://HOST/REPO:TAG deletes that tag alone (other tags of the image stay), docker://HOST/REPO@DIGEST the manifest and every tag naming it',
  builder: (y) => registryOptions(y.positional('ref', { type: 'string', array: true, demandOption: true, describe: 'image references: oci:DIR:TAG, oci:DIR@DIGEST, docker://HOST/REPO:TAG, docker://HOST/REPO@DIGEST; several at once' })),
  run: async (args, out, { signal }) => {
    // Every reference is checked before anything is removed.
    const refs: ImageReference[] = args.ref.map((r) => {
      const ref = parseImageArg(r);
      if (ref.transport === 'oci') {
        if (ref.digest === undefined && ref.tag === undefined) throw new OciToolError('USAGE', `rm: ${r}: name a tag (oci:DIR:TAG) or a digest (oci:DIR@DIGEST)`);
      } else if (ref.transport === 'docker') {
        if (ref.ref.tag !== undefined && ref.ref.digest !== undefined) throw new OciToolError('USAGE', `rm: ${r}: name a tag or a digest, not both`);
      } else throw new OciToolError('UNSUPPORTED', `rm: ${r}: only layouts (oci:) and registries (docker://) hold tags to remove`);
      return ref;
    });
    let removedCount = 0;
    for (const [i, ref] of refs.entries()) {
      const r = args.ref[i]!;
      if (ref.transport === 'oci') {
        const name = (ref.digest ?? ref.tag)!;
        const { layout } = await openStore(ref);
        const removed = await layout!.untag(name);
        for (const d of removed) out.note('removed', { reference: r, digest: d.digest, mediaType: d.mediaType, size: d.size }, `removed ${name} (${d.digest})`);
        removedCount += removed.length;
      } else if (ref.transport === 'docker') {
        const [{ store }, { deleteManifest, deleteTag }] = await Promise.all([openStore(ref, { create: true, ...(await registryOpen(args)) }), import('../../registry/delete.js')]);
        const { RegistryStore } = await import('../../registry/store.js');
        if (!(store instanceof RegistryStore)) throw new OciToolError('UNSUPPORTED', `rm: ${ref.ref.domain}: not a registry`);
        if (ref.ref.digest !== undefined) {
          await deleteManifest(store, ref.ref.digest, signal);
          out.note('removed', { reference: r, digest: ref.ref.digest }, `deleted ${ref.ref.digest} from ${store.name}, with every tag that named it`);
          removedCount++;
        } else {
          const tag = ref.ref.tag ?? 'latest';
          const was = await deleteTag(store, tag, signal);
          out.note('removed', { reference: r, tag, digest: was.digest, mediaType: was.mediaType, size: was.size }, `deleted tag ${tag} of ${store.name} (it named ${was.digest})`);
          removedCount++;
        }
      }
    }
    return { fields: { removed: removedCount } };
  },
});
