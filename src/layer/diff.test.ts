import { chmod, mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTree, type Node } from '../../test/helpers/trees.js';
import { diffEntries, type DiffStats } from './diff.js';
import { EntryConverter } from './entries.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-diff-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function diff(lower: Record<string, Node>, upper: Record<string, Node>, prep?: (l: string, u: string) => Promise<void>): Promise<{ names: string[]; stats: DiffStats }> {
  const l = join(dir, 'lower');
  const u = join(dir, 'upper');
  await makeTree(l, lower, { mtime: new Date('2020-01-01T00:00:00Z') });
  await makeTree(u, upper, { mtime: new Date('2021-06-01T00:00:00Z') }); // every mtime differs
  await prep?.(l, u);
  const stats: DiffStats = { added: 0, changed: 0, deleted: 0, opaque: 0, unchanged: 0 };
  const names: string[] = [];
  for await (const e of diffEntries(l, u, new EntryConverter(), stats)) names.push(`${e.name}${e.type === 'dir' ? '/' : ''}`);
  return { names, stats };
}

describe('diffEntries', () => {
  it('holds no unchanged file, and mtimes alone are no change', async () => {
    const tree = { 'a/one': '1', 'a/two': '2', 'b/three': '3', top: 't', link: { symlink: 'top' } };
    const { names, stats } = await diff(tree, tree);
    expect(names).toEqual([]);
    expect(stats.unchanged).toBeGreaterThan(0);
  });

  it('adds, changes (same size, other content) and deletes, with parents and whiteouts first', async () => {
    const { names } = await diff(
      { 'a/keep': 'k', 'a/same-size': 'aaaa', 'a/gone': 'g', 'b/x': 'x', 'gone-dir/f': 'f', link: { symlink: 'a/keep' } },
      { 'a/keep': 'k', 'a/same-size': 'bbbb', 'a/new': 'n', 'b/x': 'x', link: { symlink: 'b/x' } },
    );
    expect(names).toEqual(['.wh.gone-dir', 'a/', 'a/.wh.gone', 'a/new', 'a/same-size', 'link']);
  });

  it('mode changes count; a directory replaced by a file and the reverse', async () => {
    const { names } = await diff(
      { 'x/f': 'f', 'was-dir/inner': 'i', 'was-file': 'f', 'd/sub': { dir: true } },
      { 'x/f': 'f', 'was-dir': 'now a file', 'was-file/inner': 'i', 'd/sub': { dir: true } },
      async (_l, u) => {
        await chmod(join(u, 'x', 'f'), 0o600);
        await utimes(join(u, 'x'), new Date(0), new Date(0));
      },
    );
    expect(names).toEqual(['was-dir', 'was-file/', 'was-file/.wh..wh..opq', 'was-file/inner', 'x/', 'x/f']);
  });

  it('a directory emptied and refilled becomes one opaque whiteout', async () => {
    const { names, stats } = await diff({ 'cache/a': 'a', 'cache/b': 'b', 'cache/c': 'c', other: 'o' }, { 'cache/new1': '1', 'cache/new2': '2', other: 'o' });
    expect(names).toEqual(['cache/', 'cache/.wh..wh..opq', 'cache/new1', 'cache/new2']);
    expect(stats).toMatchObject({ opaque: 1, deleted: 3, added: 2 });
  });

  it('hardlinks among changed files stay hardlinks', async () => {
    const c = new EntryConverter();
    const l = join(dir, 'l');
    const u = join(dir, 'u');
    await makeTree(l, { keep: 'k' });
    await makeTree(u, { keep: 'k', f: 'data', g: { hardlink: 'f' } });
    const out = [];
    for await (const e of diffEntries(l, u, c)) out.push([e.name, e.type, e.linkname]);
    expect(out).toEqual([
      ['f', 'file', undefined],
      ['g', 'hardlink', 'f'],
    ]);
  });
});
