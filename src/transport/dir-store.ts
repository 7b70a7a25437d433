import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import type { ReadOnlyStore } from '../content/store.js';
import { schema1Digest } from '../convert/schema1.js';
import { digestOf, parseDigest } from '../digest/digest.js';
import { VerifyingStream, markVerified } from '../digest/verify.js';
import { isSchema1Type } from '../spec/media-types.js';
import { detectManifestType, parseJson } from '../spec/parse.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';

/**
 * skopeo's `dir:` format, read-only: a directory holding `manifest.json` and blobs in files named by
 * their hex digest. Hand-made blob folders work too: a blob is also looked for as `sha256:HEX`,
 * `sha256-HEX` and `blobs/sha256/HEX`. This is how a manifest file plus a blob directory (a schema 1
 * image saved by hand, say) is converted.
 */
export class DirStore implements ReadOnlyStore {
  readonly name: string;
  private manifest: Promise<{ bytes: Buffer; desc: Descriptor }> | undefined;

  constructor(readonly dir: string) {
    this.name = `dir:${dir}`;
  }

  private readManifest(): Promise<{ bytes: Buffer; desc: Descriptor }> {
    this.manifest ??= (async () => {
      const file = join(this.dir, 'manifest.json');
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (err) {
        if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `${this.name}: no manifest.json`);
        throw new OciToolError('IO', `${file}: ${(err as Error).message}`);
      }
      const mediaType = detectManifestType(parseJson(bytes, file));
      if (mediaType === undefined) throw new OciToolError('UNSUPPORTED', `${file}: cannot tell what kind of manifest this is`);
      const digest = isSchema1Type(mediaType) ? schema1Digest(bytes, file) : digestOf(bytes);
      return { bytes, desc: { mediaType, digest, size: bytes.length } };
    })();
    return this.manifest;
  }

  async resolve(reference: string): Promise<Descriptor> {
    const { desc } = await this.readManifest();
    if (reference !== '' && reference !== desc.digest) throw new OciToolError('NOT_FOUND', `${this.name}: holds ${desc.digest}, not ${reference}`);
    return desc;
  }

  private async blobFile(digest: string): Promise<{ path: string; size: number } | undefined> {
    const { algorithm, encoded } = parseDigest(digest);
    for (const name of [encoded, `${algorithm}:${encoded}`, `${algorithm}-${encoded}`, join('blobs', algorithm, encoded)]) {
      try {
        const s = await stat(join(this.dir, name));
        if (s.isFile()) return { path: join(this.dir, name), size: s.size };
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw new OciToolError('IO', `${join(this.dir, name)}: ${(err as Error).message}`);
      }
    }
    return undefined;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return (await this.blobFile(digest))?.size;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    const m = await this.readManifest();
    if (desc.digest === m.desc.digest) return true;
    const f = await this.blobFile(desc.digest);
    return f !== undefined && (desc.size < 0 || f.size === desc.size);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const m = await this.readManifest();
    if (desc.digest === m.desc.digest) {
      return markVerified(Readable.from([m.bytes]), desc.digest);
    }
    const f = await this.blobFile(desc.digest);
    if (!f) throw new OciToolError('NOT_FOUND', `blob ${desc.digest} not found in ${this.name}`);
    return pipeline(createReadStream(f.path, { highWaterMark: 1 << 20 }), new VerifyingStream(desc, `blob ${desc.digest} in ${this.name}`), () => undefined);
  }
}
