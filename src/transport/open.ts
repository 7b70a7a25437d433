import type { ImageReference } from '../reference/transport.js';
import { formatReference } from '../reference/transport.js';
import { OciLayout } from '../layout/layout.js';
import type { Store } from '../content/store.js';
import { OciToolError } from '../util/errors.js';

export interface OpenedStore {
  store: Store;
  /** The tag or digest inside the store that the reference names, if any. */
  reference?: string;
  /** The layout, when the store is one (commands like gc and verify need its extra powers). */
  layout?: OciLayout;
}

export interface OpenOptions {
  /** Create the destination if it does not exist (for writes). */
  create?: boolean;
}

/**
 * The one place that branches on the transport: opens the store a reference names. Everything after
 * this works on the Store interfaces.
 */
export async function openStore(ref: ImageReference, opts: OpenOptions = {}): Promise<OpenedStore> {
  switch (ref.transport) {
    case 'oci': {
      const layout = opts.create ? await OciLayout.init(ref.dir) : await OciLayout.open(ref.dir);
      const reference = ref.digest ?? ref.tag;
      return reference === undefined ? { store: layout, layout } : { store: layout, layout, reference };
    }
    case 'docker':
    case 'docker-archive':
    case 'oci-archive':
      throw new OciToolError('UNSUPPORTED', `${formatReference(ref)}: the ${ref.transport} transport is not implemented yet`);
  }
}
