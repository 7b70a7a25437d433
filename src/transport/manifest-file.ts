import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ReadOnlyStore } from '../content/store.js';
import { schema1Digest } from '../convert/schema1.js';
import { digestOf } from '../digest/digest.js';
import { markVerified } from '../digest/verify.js';
import { isSchema1Type } from '../spec/media-types.js';
import { detectManifestType, parseJson } from '../spec/parse.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';

type Inner = ReadOnlyStore & { blobSize?(digest: string): Promise<number | undefined> };

/**
 * A store whose image is a manifest file given apart (`--manifest FILE`), its blobs read from another
 * store: a schema 1 manifest saved by hand next to a layout or a blob folder, say.
 */
export class ManifestFileStore implements ReadOnlyStore {
  readonly name: string;

  private constructor(
    private readonly inner: Inner,
    private readonly bytes: Buffer,
    private readonly desc: Descriptor,
    file: string,
  ) {
    this.name = `${file} (blobs from ${inner.name})`;
  }

  static async open(file: string, inner: Inner): Promise<ManifestFileStore> {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      throw new OciToolError(errno(err) === 'ENOENT' ? 'NOT_FOUND' : 'IO', `${file}: ${errno(err) === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const mediaType = detectManifestType(parseJson(bytes, file));
    if (mediaType === undefined) throw new OciToolError('UNSUPPORTED', `${file}: cannot tell what kind of manifest this is`);
    const digest = isSchema1Type(mediaType) ? schema1Digest(bytes, file) : digestOf(bytes);
    return new ManifestFileStore(inner, bytes, { mediaType, digest, size: bytes.length }, file);
  }

  async resolve(): Promise<Descriptor> {
    return this.desc;
  }

  async exists(d: Descriptor): Promise<boolean> {
    return d.digest === this.desc.digest || this.inner.exists(d);
  }

  async fetch(d: Descriptor, opts?: { signal?: AbortSignal }): Promise<Readable> {
    return d.digest === this.desc.digest ? markVerified(Readable.from([this.bytes]), d.digest) : this.inner.fetch(d, opts);
  }

  async blobSize(digest: string): Promise<number | undefined> {
    if (this.inner.blobSize) return this.inner.blobSize(digest);
    return undefined;
  }
}
