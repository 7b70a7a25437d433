import type { Readable } from 'node:stream';

const REOPEN = Symbol.for('ocitool.reopen');

/**
 * The optional capability of a fetched blob stream to open the same blob again from its first byte,
 * verified as `fetch` verifies it (a layout reopens its file, a registry GETs the blob again). A
 * destination whose upload broke mid-way uses it to resume where the destination got to instead of
 * sending the whole blob again (see the registry upload). A stream without it is simply started over.
 */
export type Reopen = () => Promise<Readable>;

export function markReopenable<T extends Readable>(stream: T, reopen: Reopen): T {
  (stream as unknown as Record<symbol, Reopen>)[REOPEN] = reopen;
  return stream;
}

/** The stream's way to reopen its blob, if it has one. */
export function reopenerOf(stream: Readable): Reopen | undefined {
  return (stream as unknown as Record<symbol, Reopen | undefined>)[REOPEN];
}
