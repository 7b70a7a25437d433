import { describe, expect, it } from 'vitest';
import { errorOf } from '../../test/helpers/errors.js';
import { BLOCK, headerBlock, member, paxData, paxHeader, seal, tarBytes } from '../../test/helpers/tar-bytes.js';
import { MAX_TAR_EXTENDED, MAX_TAR_NAME, TarDecoder, padded, type TarEntryHeader } from './tar-decoder.js';
import { tarNumber } from './tar-fields.js';

/** Every entry header of a whole tar in memory, decoded as the readers do. */
function decodeAll(tar: Buffer, d = new TarDecoder('t.tar')): TarEntryHeader[] {
  const out: TarEntryHeader[] = [];
  for (let pos = 0; pos + BLOCK <= tar.length; ) {
    const step = d.next(tar.subarray(pos, pos + BLOCK), pos);
    if (step.kind === 'end') break;
    const size = step.kind === 'extended' ? step.size : step.header.size;
    if (step.kind === 'extended') d.extended(tar.subarray(pos + BLOCK, pos + BLOCK + size));
    else out.push(step.header);
    pos += BLOCK + padded(size);
  }
  return out;
}

describe('TarDecoder', () => {
  it('takes the prefix field as a path only in POSIX ustar headers; GNU headers keep times there', () => {
    const times = '15303530375\x0015303530375';
    const [posix, gnu, v7] = decodeAll(
      tarBytes(member({ name: 'file', prefix: 'gd/sub' }), member({ name: 'gd/sub/file', magic: 'gnu', prefix: times }), member({ name: 'old/file', magic: 'v7', prefix: 'ignored' })),
    );
    expect(posix!.name).toBe('gd/sub/file');
    expect(gnu!.name).toBe('gd/sub/file');
    expect(v7!.name).toBe('old/file');
  });

  it('reads GNU long names and link targets, and D (dump directory) entries as directories', () => {
    const long = `${'d/'.repeat(100)}file`;
    const [l, dir] = decodeAll(
      tarBytes(member({ name: '././@LongLink', flag: 'L', magic: 'gnu' }, `${long}\0`), member({ name: 'x', flag: 'K', magic: 'gnu' }, 'target\0'), member({ name: 'short', flag: '1', magic: 'gnu' }), member({ name: 'gd/', flag: 'D', magic: 'gnu' }, 'Dsub\0\0')),
    );
    expect(l).toMatchObject({ name: long, linkname: 'target', type: 'link' });
    expect(dir).toMatchObject({ name: 'gd/', type: 'directory', size: 6 });
  });

  it('looks a PAX key up in the entry records, then the global ones; an empty value unsets; size only from the entry', () => {
    const [a, b, c] = decodeAll(
      tarBytes(
        paxHeader([['uid', '77'], ['size', '999'], ['SCHILY.xattr.user.g', 'G']], 'g'),
        member({ name: 'a' }, 'aa'),
        paxHeader([['uid', '5'], ['path', 'long/b'], ['SCHILY.xattr.user.own', 'O']]),
        member({ name: 'b' }, 'bbb'),
        paxHeader([['uid', '']]),
        member({ name: 'c' }),
      ),
    );
    expect(a).toMatchObject({ name: 'a', uid: 77, size: 2 });
    expect([...a!.xattrs]).toEqual([['user.g', Buffer.from('G')]]);
    expect(b).toMatchObject({ name: 'long/b', uid: 5, size: 3 });
    expect([...b!.xattrs.keys()].sort()).toEqual(['user.g', 'user.own']);
    expect(c).toMatchObject({ name: 'c', uid: 0 });
    expect(c!.xattrs).toBe(a!.xattrs); // shared, not copied per entry
  });

  it('decodes 10,000 global records for 5,000 entries in linear time', () => {
    const records: [string, string][] = Array.from({ length: 10_000 }, (_, i) => [`comment.${i}`, 'x']);
    const parts = [paxHeader(records, 'g')];
    for (let i = 0; i < 5000; i++) parts.push(member({ name: `f${i}` }));
    const tar = tarBytes(...parts);
    const t0 = performance.now();
    expect(decodeAll(tar)).toHaveLength(5000);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('refuses sizes, ids and times that are not non-negative integers', () => {
    for (const [k, v] of [['size', '-1536'], ['size', '1e3'], ['size', ' 12'], ['uid', '-1'], ['gid', '0x10'], ['size', '99999999999999999999'], ['mtime', 'soon']]) {
      const tar = tarBytes(paxHeader([[k!, v!]]), member({ name: 'f' }));
      expect(errorOf(() => decodeAll(tar)).message).toMatch(new RegExp(`^t\\.tar: PAX ${k}=.* is not a`));
    }
    const negativeUid = headerBlock({ name: 'f' });
    negativeUid.fill(0xff, 108, 116); // base-256 -1
    expect(errorOf(() => decodeAll(tarBytes(seal(negativeUid)))).message).toBe('t.tar: header at byte 0 ("f") has a negative uid');
    const octal = tarBytes(member({ name: 'f', sizeField: '-0000003000' }));
    expect(errorOf(() => decodeAll(octal)).message).toBe('t.tar: header at byte 0 has an invalid size field');
    // Fractional and pre-1970 PAX times are times.
    expect(decodeAll(tarBytes(paxHeader([['mtime', '-10.5']]), member({ name: 'f' })))[0]!.mtime).toBe(-11);
  });

  it('refuses extended headers over their bounds before their data is read, and names over 64 KiB', () => {
    const d = new TarDecoder('t.tar');
    const longName = headerBlock({ name: '././@LongLink', flag: 'L', magic: 'gnu', size: 800 * 1024 * 1024 });
    expect(errorOf(() => d.next(longName, 0)).message).toBe(`t.tar: GNU long name at byte 0 claims 838860800 bytes, over the ${MAX_TAR_NAME + 1}-byte limit`);
    const pax = headerBlock({ name: 'p', flag: 'x', size: MAX_TAR_EXTENDED + 1 });
    expect(errorOf(() => new TarDecoder('t.tar').next(pax, 1024)).message).toMatch(/^t\.tar: PAX extended header at byte 1024 claims 8388609 bytes, over the 8388608-byte limit$/);
    const huge = tarBytes(paxHeader([['linkpath', 'a'.repeat(MAX_TAR_NAME + 1)]]), member({ name: 'l', flag: '2' }));
    expect(errorOf(() => decodeAll(huge)).message).toMatch(/has a link target over 65536 bytes/);
    const many = Array.from({ length: 6 }, (_, i) => paxHeader([[`k${i}`, 'v'.repeat(MAX_TAR_EXTENDED / 4)]], 'g'));
    expect(errorOf(() => decodeAll(tarBytes(...many))).message).toMatch(/global PAX records add up to more than 8388608 bytes/);
  });

  it('refuses malformed PAX records and bad checksums, naming the tar', () => {
    const broken = member({ name: 'p', flag: 'x' }, '30 path=short\n');
    expect(errorOf(() => decodeAll(tarBytes(broken, member({ name: 'f' })))).message).toMatch(/^t\.tar: malformed PAX record at byte 0/);
    const h = headerBlock({ name: 'f' });
    h[0] = 0x41;
    expect(errorOf(() => new TarDecoder('t.tar').next(h, 512)).message).toBe('t.tar: not a tar file, or damaged (bad header checksum at byte 512)');
    expect(paxData([['a', 'b']]).toString()).toBe('6 a=b\n');
  });
});

describe('tarNumber', () => {
  it('reads octal and GNU base-256 (positive and negative); NaN for anything else', () => {
    const f = (bytes: number[] | string): number => tarNumber(Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes), 0, 8);
    expect(f('0000644\0')).toBe(0o644);
    expect(f('  644 \0\0')).toBe(0o644);
    expect(f('\0\0\0\0\0\0\0\0')).toBe(0);
    expect(f([0x80, 0, 0, 0, 0, 0, 1, 0])).toBe(256);
    expect(f([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])).toBe(-2);
    expect(f('00008\0  ')).toBeNaN();
    expect(f([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).toBeNaN();
  });
});
