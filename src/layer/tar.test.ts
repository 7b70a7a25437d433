import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { encodeHeader } from './tar-header.js';
import { packLayer, type LayerEntry } from './tar.js';

async function tarOf(entries: LayerEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of packLayer(Readable.from(entries))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function parse(tar: Buffer): Promise<{ name: string; type: string; size: number; linkname: string | null; uid: number; mode: number; mtime: number; body: string }[]> {
  const ex = extract();
  const out: { name: string; type: string; size: number; linkname: string | null; uid: number; mode: number; mtime: number; body: string }[] = [];
  ex.on('entry', (h, s, next) => {
    const parts: Buffer[] = [];
    s.on('data', (c: unknown) => parts.push(c as Buffer));
    s.on('end', () => {
      out.push({ name: h.name, type: h.type ?? '', size: h.size ?? 0, linkname: h.linkname ?? null, uid: h.uid ?? 0, mode: h.mode ?? 0, mtime: (h.mtime?.getTime() ?? 0) / 1000, body: Buffer.concat(parts).toString() });
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    ex.on('finish', () => resolve());
    ex.on('error', reject);
  });
  ex.end(tar);
  await done;
  return out;
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_600_000_000 };
const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(50)}`;
const entries: LayerEntry[] = [
  { ...base, name: 'dir', type: 'dir', mode: 0o755 },
  { ...base, name: 'dir/file', type: 'file', size: 5, content: Buffer.from('hello') },
  { ...base, name: 'dir/suid', type: 'file', mode: 0o4755, size: 0, content: Buffer.alloc(0) },
  { ...base, name: `${longDir}/name.txt`, type: 'file', size: 1, content: Buffer.from('x') }, // USTAR prefix split
  { ...base, name: `${'n'.repeat(180)}.txt`, type: 'file', size: 1, content: Buffer.from('y') }, // needs PAX
  { ...base, name: 'ünïcødé.txt', type: 'file', size: 2, content: Buffer.from('ok') },
  { ...base, name: 'link', type: 'symlink', linkname: `/${'t'.repeat(150)}` },
  { ...base, name: 'hard', type: 'hardlink', linkname: 'dir/file' },
  { ...base, name: 'big-uid', type: 'file', uid: 5_000_000, size: 0, content: Buffer.alloc(0) },
];

describe('packLayer', () => {
  it('writes what tar-stream and GNU tar read back: long and unicode names, links, big ids', async () => {
    const tar = await tarOf(entries);
    expect(tar.length % 512).toBe(0);
    const got = await parse(tar);
    expect(got.map((e) => e.name)).toEqual(['dir/', 'dir/file', 'dir/suid', `${longDir}/name.txt`, `${'n'.repeat(180)}.txt`, 'ünïcødé.txt', 'link', 'hard', 'big-uid']);
    expect(got[1]).toMatchObject({ type: 'file', body: 'hello', mtime: 1_600_000_000, uid: 0 });
    expect(got[2]!.mode).toBe(0o4755);
    expect(got[6]).toMatchObject({ type: 'symlink', linkname: `/${'t'.repeat(150)}` });
    expect(got[7]).toMatchObject({ type: 'link', linkname: 'dir/file' });
    const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: tar }).toString();
    expect(listing).toContain(`${'n'.repeat(180)}.txt`);
    expect(listing).toContain('ünïcødé.txt');
    expect(listing).toMatch(/hard link to dir\/file/);
    expect(listing).toMatch(/5000000\/0/);
  });

  it('writes USTAR without PAX when everything fits, and is deterministic', async () => {
    expect(encodeHeader({ name: 'a/b', typeflag: '0', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0 })).toHaveLength(1);
    expect(encodeHeader({ name: 'é', typeflag: '0', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0 })).toHaveLength(4);
    expect((await tarOf(entries)).equals(await tarOf(entries))).toBe(true);
  });

  it('fails, naming the file, when a file changed size while being packed', async () => {
    const bad: LayerEntry = { ...base, name: 'f', type: 'file', size: 10, source: '/etc/hostname' };
    await expect(tarOf([bad])).rejects.toThrow(/\/etc\/hostname: changed while being read/);
  });
});
