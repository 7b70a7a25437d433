import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { digestOf, hashAlgorithmOf, isValidDigest, parseDigest } from './digest.js';
import { HashingStream, VerifyingStream, verifyBuffer } from './verify.js';

const HELLO = 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

describe('parseDigest', () => {
  it.each([
    [HELLO, true],
    [`sha512:${'a'.repeat(128)}`, true],
    ['sha256:' + 'A'.repeat(64), false], // uppercase hex is forbidden
    ['sha256:' + 'a'.repeat(63), false],
    ['sha256:' + 'a'.repeat(65), false],
    ['sha512:' + 'a'.repeat(64), false],
    ['sha256:' + 'g'.repeat(64), false],
    ['sha256', false],
    [':abc', false],
    ['SHA256:' + 'a'.repeat(64), false],
    ['multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8', true], // unknown but grammatical
    ['blake3:' + 'a'.repeat(64), true],
    ['sha256:../../etc', false],
    ['sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564', true],
  ])('%s valid=%s', (d, ok) => {
    expect(isValidDigest(d)).toBe(ok);
    if (!ok) expect(() => parseDigest(d)).toThrow(/invalid digest/);
  });

  it('splits algorithm and encoded', () => {
    expect(parseDigest(HELLO)).toEqual({ algorithm: 'sha256', encoded: HELLO.slice(7) });
  });

  it('refuses to hash unknown algorithms', () => {
    expect(() => hashAlgorithmOf('blake3:' + 'a'.repeat(64))).toThrow(/unsupported algorithm/);
  });
});

describe('hashing and verifying streams', () => {
  it('digestOf hashes sha256 and sha512', () => {
    expect(digestOf('hello')).toBe(HELLO);
    expect(digestOf('hello', 'sha512')).toMatch(/^sha512:9b71d224bd62f378/);
  });

  it('HashingStream reports digest and size', async () => {
    const h = new HashingStream();
    await pipeline(Readable.from([Buffer.from('hel'), Buffer.from('lo')]), h, sink());
    expect(h.digest).toBe(HELLO);
    expect(h.size).toBe(5);
  });

  it('VerifyingStream passes matching content', async () => {
    await expect(pipeline(Readable.from([Buffer.from('hello')]), new VerifyingStream({ digest: HELLO, size: 5 }), sink())).resolves.toBeUndefined();
  });

  it('fails on trailing bytes, short content and wrong content', async () => {
    const run = (s: string, size = 5): Promise<void> =>
      pipeline(Readable.from([Buffer.from(s)]), new VerifyingStream({ digest: HELLO, size }, 'blob X'), sink());
    await expect(run('hello!')).rejects.toMatchObject({ code: 'SIZE_MISMATCH', message: expect.stringContaining('blob X') });
    await expect(run('hell')).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(run('jello')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH', message: expect.stringContaining(HELLO) });
  });

  it('skips the size check for unknown sizes (-1) but still checks the digest', async () => {
    await expect(pipeline(Readable.from([Buffer.from('hello')]), new VerifyingStream({ digest: HELLO, size: -1 }), sink())).resolves.toBeUndefined();
    await expect(pipeline(Readable.from([Buffer.from('hellO')]), new VerifyingStream({ digest: HELLO, size: -1 }), sink())).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  it('verifyBuffer', () => {
    expect(() => verifyBuffer(Buffer.from('hello'), { digest: HELLO, size: 5 })).not.toThrow();
    expect(() => verifyBuffer(Buffer.from('hello'), { digest: HELLO, size: 6 })).toThrow(/6/);
  });
});
