import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf } from '../../test/helpers/errors.js';
import { member, paxHeader, tarBytes } from '../../test/helpers/tar-bytes.js';
import { digestOf } from '../digest/digest.js';
import { TarIndex } from './tar-index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-tar-index-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function indexOf(name: string, ...parts: Buffer[]): Promise<TarIndex> {
  const file = join(dir, name);
  await writeFile(file, tarBytes(...parts));
  return TarIndex.open(file, `test:${name}`);
}

describe('TarIndex', () => {
  it('follows symbolic and hard links to a file; says which link leads nowhere, or round a loop', async () => {
    const t = await indexOf(
      'links.tar',
      member({ name: 'blobs/real' }, 'data'),
      member({ name: 'a/link', flag: '2', linkname: '../blobs/real' }),
      member({ name: 'hard', flag: '1', linkname: '/a/link' }),
      member({ name: 'loop1', flag: '2', linkname: 'loop2' }),
      member({ name: 'loop2', flag: '2', linkname: 'loop1' }),
      member({ name: 'via', flag: '2', linkname: 'a/missing' }),
      member({ name: 'adir/', flag: '5' }),
      member({ name: 'hard-to-via', flag: '1', linkname: 'via' }),
    );
    expect(t.find('hard')).toMatchObject({ name: 'blobs/real', size: 4 });
    expect(t.find('nothing')).toBeUndefined();
    expect(t.find('adir')).toBeUndefined();
    expect(errorOf(() => t.find('loop1')).message).toBe('test:links.tar: member "loop1" is a symbolic link to "loop2", which is more than 16 links away from a file (a loop?)');
    expect(errorOf(() => t.find('hard-to-via')).message).toBe('test:links.tar: "hard-to-via" leads to member "via", a symbolic link to "a/missing", which is not in the archive');
    expect(errorOf(() => t.find('via')).message).toBe('test:links.tar: member "via" is a symbolic link to "a/missing", which is not in the archive');
  });

  it('streams an empty member as nothing, reads JSON members only under the cap, hashes a member once', async () => {
    const t = await indexOf('members.tar', member({ name: 'empty' }), paxHeader([['size', '10']]), member({ name: 'ten', size: 10 }, '0123456789'));
    const chunks: Buffer[] = [];
    for await (const c of t.stream(t.find('empty')!)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).length).toBe(0);
    const ten = t.find('ten')!;
    expect((await t.read(ten)).toString()).toBe('0123456789');
    await expect(t.read(ten, 'ten.json', 9)).rejects.toThrow(/^ten\.json: 10 bytes is over the 9-byte limit for JSON documents$/);
    const d = t.digest(ten);
    expect(t.digest(ten)).toBe(d);
    expect(await d).toBe(digestOf(Buffer.from('0123456789')));
  });
});
