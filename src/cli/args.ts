import { OciToolError } from '../util/errors.js';
import { parseReference, type ImageReference } from '../reference/transport.js';
import { parsePlatform } from '../spec/platform.js';
import type { Platform } from '../spec/types.js';

const TRANSPORT_PREFIX = /^(oci|oci-archive|docker|docker-archive|dir):/;

/**
 * An image reference argument. A string without a transport prefix is read as an OCI layout,
 * `DIR[:TAG|@DIGEST]`, so `ocitool ls ./layout` and `ocitool inspect ./layout:v1` work.
 */
export function parseImageArg(s: string): ImageReference {
  return parseReference(TRANSPORT_PREFIX.test(s) ? s : `oci:${s}`);
}

/** A reference that must name an OCI layout. */
export function parseLayoutArg(s: string): Extract<ImageReference, { transport: 'oci' }> {
  const ref = parseImageArg(s);
  if (ref.transport !== 'oci') {
    throw new OciToolError('USAGE', `"${s}" is not an OCI layout (expected DIR or oci:DIR)`);
  }
  return ref;
}

export function platformArg(s: string | undefined): Platform | undefined {
  return s === undefined ? undefined : parsePlatform(s);
}
