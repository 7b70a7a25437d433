import type { Credential } from '../registry/auth/credentials.js';
import { absoluteReference, formatReference, parseReference, type ImageReference } from '../reference/transport.js';
import { openStore } from '../transport/open.js';
import { unpackFrom, type UnpackOptions, type UnpackResult } from './unpack.js';

export interface UnpackImageOptions extends UnpackOptions {
  /** Registry credentials (default: docker config files and helpers). */
  credential?: Credential;
  /** Allow plain HTTP and unverified TLS to registries. */
  insecure?: boolean;
}

/**
 * Unpacks the image a reference names (`oci:DIR:TAG`, `docker://HOST/REPO:TAG`, an archive) into the
 * root filesystem `dir`, safely (see unpack.ts), recording the state file repack reads.
 *
 *   await unpack('oci:./img:v1', './rootfs', { uidMap: [{ container: 0, host: 100000, size: 65536 }] });
 */
export async function unpack(image: string | ImageReference, dir: string, opts: UnpackImageOptions = {}): Promise<UnpackResult> {
  const ref = typeof image === 'string' ? parseReference(image) : image;
  const { credential, insecure, ...rest } = opts;
  const opened = await openStore(ref, { ...(credential ? { credential } : {}), ...(insecure ? { insecure: true } : {}) });
  try {
    return await unpackFrom(opened.store, opened.reference ?? '', dir, { source: formatReference(absoluteReference(ref)), ...rest });
  } finally {
    await opened.close?.();
  }
}
