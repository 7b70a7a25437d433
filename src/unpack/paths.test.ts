import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PathMap, RootResolver, UnsafeEntry, entryComponents } from './paths.js';

const root = mkdtempSync(join(tmpdir(), 'ocitool-paths-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('RootResolver memory', () => {
  it('forgetting a directory costs what is below it, not everything known: 2,000 flips among 100,000 known directories', () => {
    const r = new RootResolver(root);
    for (let i = 0; i < 100_000; i++) r.known(`d${i}`);
    const start = performance.now();
    for (let i = 0; i < 2_000; i++) {
      r.known('x');
      r.known('x/sub');
      r.forget('x');
    }
    expect(performance.now() - start).toBeLessThan(1_000);
    // Forgotten for real: x/sub is looked up again (and is not there).
    expect(() => r.resolve(['x', 'sub', 'f'], { create: false })).toThrow(UnsafeEntry);
    // The others are still known: resolving below one needs no system call (the directory does not even exist).
    expect(r.resolve(['d99999', 'f'], { create: false })).toBe('d99999/f');
  });
});

describe('PathMap', () => {
  it('drops a subtree, its children index too, and tells of each path dropped', () => {
    const m = new PathMap<number>();
    for (const [i, p] of ['a', 'a/b', 'a/b/c', 'a/d', 'ab', 'e'].entries()) m.set(p, i);
    expect(m.children('a').sort()).toEqual(['a/b', 'a/d']);
    const gone: string[] = [];
    m.deleteTree('a', (p) => gone.push(p));
    expect(gone.sort()).toEqual(['a', 'a/b', 'a/b/c', 'a/d']);
    expect([...m.entries()].map(([k]) => k).sort()).toEqual(['ab', 'e']);
    expect(m.children('').sort()).toEqual(['ab', 'e']);
    m.set('a/x', 9); // a path set again below a dropped one is indexed afresh
    expect(m.children('a')).toEqual(['a/x']);
  });
});

describe('entryComponents', () => {
  it('reads ./ and . as the root itself (tar -C DIR . writes them first)', () => {
    for (const n of ['./', '.', './/', '/', './.']) expect(entryComponents(n), n).toEqual([]);
    expect(entryComponents('./a/b/')).toEqual(['a', 'b']);
    expect(() => entryComponents('./../x')).toThrow(UnsafeEntry);
  });

  it('refuses a NUL byte in a name', () => {
    expect(() => entryComponents('a\0b')).toThrow(/NUL byte/);
  });
});
