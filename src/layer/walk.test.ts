import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTree } from '../../test/helpers/trees.js';
import { IgnoreMatcher } from './ignore.js';
import { compareNames, walkTree, walkTreeSync, type TreeEntry, type WalkTreeOptions } from './walk.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-walk-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function paths(root: string, ignore?: IgnoreMatcher): Promise<string[]> {
  const out: string[] = [];
  const opts = ignore ? { exclude: (p: string) => ignore.excludes(p), reinclude: ignore.hasNegations } : {};
  for await (const e of walkTree(root, opts)) out.push(`${e.path}${e.type === 'dir' ? '/' : ''}${e.type === 'symlink' ? `->${e.linkTarget}` : ''}`);
  return out;
}

describe('walkTree', () => {
  it('is depth-first with siblings in byte order, whatever the creation order', async () => {
    await makeTree(dir, { 'b/z': 'z', 'a-b': 'x', 'a/c': 'c', B: 'upper', 'a/b': 'b', 'é': 'e', 'l': { symlink: 'a/c' } });
    expect(await paths(dir)).toEqual(['B', 'a/', 'a/b', 'a/c', 'a-b', 'b/', 'b/z', 'l->a/c', 'é']);
  });

  it('compareNames sorts as the names\' UTF-8 bytes: ASCII, accents, BMP private use and astral characters mixed', () => {
    const names = ['b', 'B', 'a-b', 'a', 'a.b', '\u00e9', 'e\u0301', '\ue000', '\u{1f600}', 'z\u{1f600}', 'z\uffff', '~', ' ', '0', '_x', 'x_', '\u00ff', '\u0100'];
    const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    // UTF-16 order differs for astral characters against U+E000-U+FFFF: the comparison must not use it there.
    expect([...names].sort(compareNames)).toEqual(byBytes);
    expect([...names].reverse().sort(compareNames)).toEqual(byBytes);
  });

  it('reports hardlinks by inode and never follows symlinks', async () => {
    await makeTree(dir, { f: 'data', g: { hardlink: 'f' }, loop: { symlink: '.' } });
    const entries = [];
    for await (const e of walkTree(dir)) entries.push(e);
    expect(entries.map((e) => e.path)).toEqual(['f', 'g', 'loop']);
    expect(entries[0]!.inode).toBeDefined();
    expect(entries[0]!.inode).toBe(entries[1]!.inode);
    expect(entries[2]!.type).toBe('symlink');
  });

  it('prunes excluded directories, and enters them only for exceptions', async () => {
    await makeTree(dir, { 'keep/a': 'a', 'skip/x': 'x', 'skip/deep/ok': 'ok', 'skip/deep/no': 'no' });
    expect(await paths(dir, new IgnoreMatcher(['skip']))).toEqual(['keep/', 'keep/a']);
    expect(await paths(dir, new IgnoreMatcher(['skip', '!skip/deep/ok']))).toEqual(['keep/', 'keep/a', 'skip/', 'skip/deep/', 'skip/deep/ok']);
  });

  it('names a missing root', async () => {
    await expect(paths(join(dir, 'nope'))).rejects.toThrow(/nope: no such file or directory/);
  });
});

describe('walkTreeSync', () => {
  /** Nested folders, symlinks (to a file, a folder, nowhere), and an excluded folder with an exception. */
  const tree = {
    'a/b/c/deep': 'd',
    'a/b/file': 'f',
    'a/link-dir': { symlink: 'b' },
    'a/link-none': { symlink: '../missing' },
    'skip/x': 'x',
    'skip/keep/k': 'k',
    'skip/drop/y': 'y',
    'top': 't',
    'top-link': { symlink: 'top' },
  } as const;
  const ignore = new IgnoreMatcher(['skip', '!skip/keep/k']);
  const opts: WalkTreeOptions = { exclude: (p) => ignore.excludes(p), reinclude: ignore.hasNegations };

  async function asyncEntries(root: string): Promise<TreeEntry[]> {
    const out: TreeEntry[] = [];
    for await (const e of walkTree(root, opts)) out.push(e);
    return out;
  }

  it('gives the entries walkTree gives, in the same order, excluded folders and their exceptions included', async () => {
    await makeTree(dir, tree);
    const sync = [...walkTreeSync(dir, opts)];
    expect(sync.map((e) => e.path)).toEqual(['a', 'a/b', 'a/b/c', 'a/b/c/deep', 'a/b/file', 'a/link-dir', 'a/link-none', 'skip', 'skip/keep', 'skip/keep/k', 'top', 'top-link']);
    expect(sync.find((e) => e.path === 'a/link-dir')).toMatchObject({ type: 'symlink', linkTarget: 'b' });
    expect(await asyncEntries(dir)).toEqual(sync);
  });

  it("gives each entry's abs path as path.join(root, its path) for the roots '.', 'a/./b/', '..' and absolute ones (a naive abs + '/' + name fails it)", async () => {
    await makeTree(join(dir, 'a/b'), tree);
    const cwd = process.cwd();
    process.chdir(join(dir, 'a/b'));
    try {
      // Relative roots, from the tree's own folder and from above it and beside it.
      for (const [at, root] of [['a/b', '.'], ['a/b', './'], ['', 'a/./b/'], ['', 'a//b'], ['a/b/a', '..'], ['a/b/a', '../skip/..']] as const) {
        process.chdir(join(dir, at));
        const sync = [...walkTreeSync(root, opts)];
        expect(sync.length).toBe(12);
        for (const e of sync) expect(e.abs, `${root}: ${e.path}`).toBe(join(root, e.path));
        expect(await asyncEntries(root)).toEqual(sync);
      }
    } finally {
      process.chdir(cwd);
    }
    for (const root of [join(dir, 'a/b'), `${join(dir, 'a/b')}/`, `${dir}/a/./b`]) {
      const sync = [...walkTreeSync(root, opts)];
      expect(sync.length).toBe(12);
      for (const e of sync) expect(e.abs, `${root}: ${e.path}`).toBe(join(root, e.path));
    }
  });
});
