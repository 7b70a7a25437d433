import { mkdtemp, readFile, readdir, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../digest/digest.js';
import { MediaType } from '../spec/media-types.js';
import { Annotation } from '../spec/types.js';
import { fetchBytes } from '../content/store.js';
import { OciLayout } from './layout.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-layout-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const blob = (s: string) => ({ mediaType: 'application/octet-stream', digest: digestOf(s), size: Buffer.byteLength(s) });

describe('OciLayout', () => {
  it('init writes oci-layout, an empty index and blobs/sha256', async () => {
    const l = await OciLayout.init(join(dir, 'img'));
    expect(JSON.parse(await readFile(join(dir, 'img', 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(JSON.parse(await readFile(l.indexPath, 'utf8'))).toEqual({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
    expect(await readdir(join(dir, 'img', 'blobs'))).toEqual(['sha256']);
  });

  it('init refuses a non-empty directory that is not a layout, and reopens an existing one', async () => {
    await writeFile(join(dir, 'junk'), 'x');
    await expect(OciLayout.init(dir)).rejects.toThrow(/not empty and is not an OCI layout/);
    const l = await OciLayout.init(join(dir, 'a'));
    await l.putBytes('hello', 'text/plain');
    await OciLayout.init(join(dir, 'a'));
    expect(await l.stat(digestOf('hello'))).toBe(5);
  });

  it('init finishes a layout whose writer was killed before index.json was written', async () => {
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const l = await OciLayout.init(dir);
    expect((await l.readIndex()).manifests).toEqual([]);
  });

  it('open names the directory when it is not a layout', async () => {
    await expect(OciLayout.open(join(dir, 'missing'))).rejects.toThrow(/missing: not an OCI layout \(no oci-layout file\)/);
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    await writeFile(join(dir, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    await expect(OciLayout.open(dir)).rejects.toThrow(/unsupported imageLayoutVersion 2.0.0/);
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(dir, 'index.json'), '{"schemaVersion":2,"manifests":[');
    await expect(OciLayout.open(dir)).rejects.toThrow(/index\.json: malformed JSON/);
  });

  it('puts a blob, verifies it as read, and never stores content under a wrong digest', async () => {
    const l = await OciLayout.init(dir);
    await l.push(blob('hello'), Readable.from([Buffer.from('hello')]));
    expect((await fetchBytes(l, blob('hello'))).toString()).toBe('hello');
    await expect(l.push(blob('world'), Readable.from([Buffer.from('worle')]))).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await expect(l.push(blob('world'), Readable.from([Buffer.from('world!')]))).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    expect(await l.stat(digestOf('world'))).toBeUndefined();
    expect(await readdir(join(dir, '.ocitool', 'tmp'))).toEqual([]);
    // Flip a byte on disk: the read fails, naming the blob.
    await chmod(l.blobPath(digestOf('hello')), 0o644);
    await writeFile(l.blobPath(digestOf('hello')), 'jello');
    await expect(fetchBytes(l, blob('hello'))).rejects.toThrow(new RegExp(`blob ${digestOf('hello')} in oci:`));
  });

  it('does not rewrite an existing blob and computes digests when none is given', async () => {
    const l = await OciLayout.init(dir);
    const r = await l.putBlob(Readable.from([Buffer.from('abc')]));
    expect(r).toEqual({ digest: digestOf('abc'), size: 3 });
    let read = false;
    const src = new Readable({ read() { read = true; this.push(null); } });
    await l.push(blob('abc'), src);
    expect(read).toBe(false);
  });

  it('tags: a new tag replaces only the previous holder of that tag', async () => {
    const l = await OciLayout.init(dir);
    const a = await l.putBytes('{"schemaVersion":2,"manifests":[]}', MediaType.OciIndex);
    const b = await l.putBytes('{"schemaVersion":2,"manifests":[],"annotations":{"b":"1"}}', MediaType.OciIndex);
    await l.tag(a, 'v1');
    await l.tag(a, 'latest');
    await l.tag(b, 'v2');
    await l.tag(b, 'latest');
    expect((await l.tags()).map((t) => [t.tag, t.descriptor.digest])).toEqual([
      ['v1', a.digest],
      ['v2', b.digest],
      ['latest', b.digest],
    ]);
    expect((await l.resolve('v1')).digest).toBe(a.digest);
    expect((await l.resolve(a.digest)).digest).toBe(a.digest);
    await expect(l.resolve('nope')).rejects.toThrow(/:nope: no such tag/);
    await expect(l.resolve()).rejects.toThrow(/holds 3 images/);
    await l.untag('v1');
    expect((await l.tags()).map((t) => t.tag)).toEqual(['v2', 'latest']);
    await expect(l.untag('v1')).rejects.toThrow(/not in index.json/);
    const idx = JSON.parse(await readFile(l.indexPath, 'utf8'));
    expect(idx.manifests[0].annotations[Annotation.RefName]).toBe('v2');
  });

  it('resolves a digest that is not in index.json when the blob is a manifest', async () => {
    const l = await OciLayout.init(dir);
    const m = await l.putBytes(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: blob('c'), layers: [] }), MediaType.OciManifest);
    expect(await l.resolve(m.digest)).toEqual(m);
    const other = await l.putBytes('not json', 'text/plain');
    await expect(l.resolve(other.digest)).rejects.toThrow();
  });

  it('refuses digests that would escape blobs/', async () => {
    const l = await OciLayout.init(dir);
    expect(() => l.blobPath('sha256:../../etc/passwd')).toThrow(/invalid digest/);
    await mkdir(join(dir, 'x'));
  });
});
