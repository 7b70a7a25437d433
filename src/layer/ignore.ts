import { readFile } from 'node:fs/promises';
import picomatch from 'picomatch';
import { posix } from 'node:path';
import { OciToolError } from '../util/errors.js';

interface Rule {
  negate: boolean;
  match: (path: string) => boolean;
}

/**
 * `.dockerignore` semantics: one pattern a line (`#` comments, blank lines skipped), `**` spans
 * directories, a leading `/` is dropped, `!` re-includes; the last rule that matches a path or any of
 * its parent directories decides. Patterns are picomatch globs (`dot: true`: `*` also matches names starting with `.`).
 */
export class IgnoreMatcher {
  private readonly rules: Rule[];
  readonly hasNegations: boolean;

  constructor(patterns: string[]) {
    this.rules = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '' || p.startsWith('#')) continue;
      const negate = p.startsWith('!');
      if (negate) p = p.slice(1).trim();
      p = posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
      if (p === '' || p === '.') continue;
      this.rules.push({ negate, match: picomatch(p, { dot: true }) });
    }
    this.hasNegations = this.rules.some((r) => r.negate);
  }

  static async fromFile(file: string, extra: string[] = []): Promise<IgnoreMatcher> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new OciToolError('NOT_FOUND', `ignore file ${file}: ${(err as Error).message}`, { cause: err });
    }
    return new IgnoreMatcher([...text.split(/\r?\n/), ...extra]);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Whether `path` (relative, '/'-separated) is excluded. */
  excludes(path: string): boolean {
    const candidates: string[] = [];
    for (let p = path; p !== '' && p !== '.'; p = posix.dirname(p)) candidates.push(p);
    let excluded = false;
    for (const rule of this.rules) {
      if (candidates.some((c) => rule.match(c))) excluded = !rule.negate;
    }
    return excluded;
  }
}
