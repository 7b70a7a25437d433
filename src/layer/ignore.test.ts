import { describe, expect, it } from 'vitest';
import { IgnoreMatcher } from './ignore.js';

describe('IgnoreMatcher (.dockerignore semantics)', () => {
  const m = new IgnoreMatcher(['# comment', '', 'node_modules', '*.log', '/build/', 'docs/**/*.md', '!docs/keep/README.md', 'secret*', '!secret-ok']);
  it.each([
    ['node_modules', true],
    ['node_modules/x/index.js', true], // below an excluded directory
    ['src/node_modules', false], // patterns are anchored at the root
    ['a.log', true],
    ['sub/a.log', false],
    ['build', true],
    ['build/out.js', true],
    ['docs/a/b.md', true],
    ['docs/b.md', true],
    ['docs/keep/README.md', false], // re-included
    ['docs/keep/other.md', true],
    ['secret.txt', true],
    ['secret-ok', false],
    ['src/index.ts', false],
    ['.git', false],
  ])('%s excluded=%s', (path, excluded) => {
    expect(m.excludes(path)).toBe(excluded);
  });
  it('knows when exceptions exist', () => {
    expect(m.hasNegations).toBe(true);
    expect(new IgnoreMatcher(['a']).hasNegations).toBe(false);
    expect(new IgnoreMatcher(['# only a comment']).empty).toBe(true);
  });
  it('matches dotfiles with wildcards', () => {
    expect(new IgnoreMatcher(['*']).excludes('.env')).toBe(true);
    expect(new IgnoreMatcher(['**/.DS_Store']).excludes('a/b/.DS_Store')).toBe(true);
  });
});
