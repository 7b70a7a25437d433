/**
 * artifact pull against crafted artifacts (issue 12): a directory layer holds exactly its title at
 * its top level (checked before anything is written), and every write is resolved afresh inside DIR,
 * so a symlink that a directory layer brings cannot send a later title out of DIR.
 */
import { existsSync, lstatSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION } from '../src/artifact/artifact.js';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import { Annotation, type Descriptor } from '../src/spec/types.js';
import { ocitool } from './helpers/cli.js';
import { layerTar, listing, type TarEntry } from './helpers/layers.js';
import { tmpDir } from './helpers/tools.js';

let work: string;
let remove: () => Promise<void>;
beforeAll(async () => {
  ({ path: work, remove } = await tmpDir('artifact-hostile'));
});
afterAll(() => remove());

type Layer = { file: string; title: string } | { dir: TarEntry[]; title: string };

/** An artifact of these layers (files by content, directories as ORAS marks them) in a new layout, tagged `a`. */
async function artifactOf(name: string, layers: Layer[]): Promise<string> {
  const dir = join(work, name, 'layout');
  const layout = await OciLayout.init(dir);
  await layout.putBytes('{}', MediaType.OciEmpty);
  const descs: Descriptor[] = [];
  for (const l of layers) {
    if ('file' in l) descs.push({ ...(await layout.putBytes(l.file, 'text/plain')), annotations: { [Annotation.Title]: l.title } });
    else {
      const tar = await layerTar(l.dir);
      const blob = await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip);
      descs.push({ ...blob, annotations: { [Annotation.Title]: l.title, [TAR_DIGEST_ANNOTATION]: digestOf(tar), [UNPACK_ANNOTATION]: 'true' } });
    }
  }
  const m = { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: 'application/vnd.example.hostile', config: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 }, layers: descs };
  await layout.tag(await layout.putBytes(JSON.stringify(m), MediaType.OciManifest), 'a');
  return `oci:${dir}:a`;
}

/** A directory outside DIR that the layers aim at, and a snapshot of it (types, modes, contents). */
async function outside(name: string): Promise<{ path: string; snapshot: () => string }> {
  const path = join(work, name, 'outside');
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'keep'), 'keep\n');
  return { path, snapshot: () => listing(path) + readdirSync(path).map((f) => (lstatSync(join(path, f)).isFile() ? readFileSync(join(path, f), 'utf8') : '')).join('|') };
}

describe('artifact pull: directory layers', () => {
  it('a layer titled docs whose tar also holds victim/ and .ssh/ is refused before anything is written', async () => {
    const ref = await artifactOf('extra-names', [
      { file: 'first\n', title: 'first.txt' },
      {
        title: 'docs',
        // What the title names, and beside it names the tar has no business writing.
        dir: [{ name: 'docs/', type: 'directory' }, { name: 'docs/README.md', content: '# docs\n' }, ...['victim/keep', '.ssh/authorized_keys'].flatMap((f): TarEntry[] => [{ name: f.replace(/\/.*/, '/'), type: 'directory' }, { name: f, content: 'attacker\n' }])],
      },
    ]);
    const dir = join(work, 'extra-names', 'out');
    await mkdir(join(dir, 'victim'), { recursive: true });
    await mkdir(join(dir, '.ssh'));
    await writeFile(join(dir, 'victim/keep'), 'mine\n');
    await writeFile(join(dir, '.ssh/authorized_keys'), 'ssh-ed25519 AAAA me\n');
    const before = listing(dir);
    const res = await ocitool(['artifact', 'pull', ref, dir]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^ocitool: refused layer sha256:[0-9a-f]{64} of .*: directory titled "docs": it also holds "(victim|\.ssh)" at its top level/);
    expect(listing(dir)).toBe(before); // not even first.txt, no staging directory left
    expect(readFileSync(join(dir, 'victim/keep'), 'utf8')).toBe('mine\n');
    expect(readFileSync(join(dir, '.ssh/authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAA me\n');
  });

  it('x/dummy, then a layer y whose tar holds x -> OUTSIDE, then x/pwned: refused, nothing written, OUTSIDE untouched', async () => {
    const out = await outside('swap-x');
    const before = out.snapshot();
    const ref = await artifactOf('swap-x', [
      { file: 'dummy\n', title: 'x/dummy' },
      { title: 'y', dir: [{ name: 'y/', type: 'directory' }, { name: 'y/f', content: 'f' }, { name: 'x', type: 'symlink', linkname: out.path }] },
      { file: 'pwned\n', title: 'x/pwned' },
    ]);
    const dir = join(work, 'swap-x', 'out');
    const res = await ocitool(['artifact', 'pull', ref, dir]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/directory titled "y": it also holds "x" at its top level/);
    expect(out.snapshot()).toBe(before);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a directory layer whose top level is a symlink, or empty, is refused', async () => {
    const out = await outside('top-symlink');
    const ref = await artifactOf('top-symlink', [{ title: 'docs', dir: [{ name: 'docs', type: 'symlink', linkname: out.path }] }]);
    const res = await ocitool(['artifact', 'pull', ref, join(work, 'top-symlink', 'out')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/directory titled "docs": it holds no directory "docs" at its top level/);
    const empty = await artifactOf('top-empty', [{ title: 'docs', dir: [] }]);
    expect((await ocitool(['artifact', 'pull', empty, join(work, 'top-empty', 'out')])).stderr).toMatch(/holds no directory "docs"/);
  });

  it('x/sub/dummy, then a layer x whose x/sub -> OUTSIDE, then x/sub/pwned: resolved afresh, pwned stays inside DIR', async () => {
    const out = await outside('stale');
    const before = out.snapshot();
    const ref = await artifactOf('stale', [
      { file: 'dummy\n', title: 'x/sub/dummy' },
      { title: 'x', dir: [{ name: 'x/', type: 'directory' }, { name: 'x/sub', type: 'symlink', linkname: out.path }] },
      { file: 'pwned\n', title: 'x/sub/pwned' },
    ]);
    const dir = join(work, 'stale', 'out');
    const res = await ocitool(['artifact', 'pull', '-q', ref, dir]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(out.snapshot()).toBe(before);
    expect(existsSync(join(out.path, 'pwned'))).toBe(false);
    // As inside a container: the absolute link is followed from DIR's root.
    expect(readFileSync(join(dir, out.path, 'pwned'), 'utf8')).toBe('pwned\n');
    expect(lstatSync(join(dir, 'x/sub')).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir).filter((n) => n.startsWith('.ocitool-pull'))).toEqual([]);
  });
});
