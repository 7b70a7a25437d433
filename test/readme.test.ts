/**
 * Every shell example in README.md runs as written (conventions: test/helpers/readme.ts), in order,
 * in a copy of this checkout (its files as a fresh clone has them, and the `dist` that `npm ci` builds),
 * with the tests' own registry standing in for `localhost:5000`. `npm` and `npx` are refused there (an
 * `npm ci` through a link would empty this checkout's node_modules, and the tests stay off the npm
 * registry), and so is a bare `ocitool`, which is not on PATH in a clone.
 */
import { execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { README_REGISTRY, needsOutside, readReadme, runBlock, shellBlocks, skipProblems, typecheckTsBlocks, type ShellBlock } from './helpers/readme.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { tmpDir } from './helpers/tools.js';

/** At most this share of the README's shell blocks may be marked skip. */
const MAX_SKIPPED_SHARE = 0.2;

const README = join(ROOT, 'README.md');

/** An environment with nothing of this machine's user in it: no docker config, proxies or SOURCE_DATE_EPOCH. */
function cleanEnv(home: string, shims: string): NodeJS.ProcessEnv {
  const keep = ['PATH', 'TMPDIR', 'LANG', 'LC_ALL'];
  const env: NodeJS.ProcessEnv = Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
  return { ...env, PATH: `${shims}:${process.env.PATH ?? ''}`, HOME: home, OCITOOL_CACHE_DIR: join(home, '.cache', 'ocitool') };
}

/**
 * What a fresh clone holds, copied into `dest`: the files git tracks (as they are in the work tree; a new
 * fixture counts once `git add`ed), not what running the examples here left behind, and the built dist/.
 */
async function cloneLike(dest: string): Promise<void> {
  const files = execFileSync('git', ['ls-files', '-z', '--cached'], { cwd: ROOT }).toString().split('\0').filter(Boolean);
  for (const f of files) {
    const from = join(ROOT, f);
    if (!(await stat(from).catch(() => undefined))) continue; // deleted in the work tree
    await cp(from, join(dest, f), { verbatimSymlinks: true });
  }
  await cp(join(ROOT, 'dist'), join(dest, 'dist'), { recursive: true });
}

describe('README examples: extraction and running', () => {
  const doc = ['# t', '', '```sh', 'true', '# a comment', 'echo one \\', '  two', '```', '', '<!-- readme-test: skip: needs a remote registry -->', '```sh', 'bin/ocitool pull docker://ghcr.io/a/b:1 oci:./x:1', '```', '```ts', 'const x = 1;', '```', ''].join('\n');

  it('finds sh blocks, their commands with README lines, continuations and skip markers', () => {
    const blocks = shellBlocks(doc);
    expect(blocks).toEqual([
      { line: 3, commands: [{ line: 4, text: 'true' }, { line: 6, text: 'echo one \\\n  two' }] },
      { line: 11, commands: [{ line: 12, text: 'bin/ocitool pull docker://ghcr.io/a/b:1 oci:./x:1' }], skip: 'needs a remote registry' },
    ]);
  });

  it('refuses shell examples under another label and unclosed fences, naming the line', () => {
    expect(() => shellBlocks('x\n```bash\nls\n```\n')).toThrow(/README line 2: label shell examples ```sh/);
    expect(() => shellBlocks('x\n```\nls\n```\n')).toThrow(/README line 2/);
    expect(() => shellBlocks('x\n```sh\nls\n')).toThrow(/README line 2: .* never closed/);
  });

  it('a skip marker must be justified: every command in the block needs npm or another registry', () => {
    const blocks = shellBlocks(doc);
    expect(skipProblems(blocks, 0.5)).toEqual([]);
    const local = shellBlocks(['<!-- readme-test: skip: needs a remote registry -->', '```sh', `bin/ocitool ls docker://${README_REGISTRY}/a`, 'npm ci', '```', ''].join('\n'));
    expect(skipProblems(local, 1)).toEqual([`README line 3: "bin/ocitool ls docker://${README_REGISTRY}/a" could run here: move it to a block the test runs`]);
    const unexplained = shellBlocks(['<!-- readme-test: skip: remote -->', '```sh', 'npm ci', '```', ''].join('\n'));
    expect(skipProblems(unexplained, 1)).toEqual(['README line 1: a skip marker needs a reason of a few words']);
    const many: ShellBlock[] = Array.from({ length: 10 }, (_, i) => ({ line: i, commands: [], ...(i < 3 ? { skip: 'needs the npm registry' } : {}) }));
    expect(skipProblems(many, 0.2)[0]).toMatch(/^3 of 10 shell blocks are marked skip/);
    expect(needsOutside('HTTPS_PROXY=x npm ci')).toBe('npm');
    expect(needsOutside('bin/ocitool copy docker://localhost:5000/a docker://10.0.0.5:5000/a')).toBe('registry 10.0.0.5:5000');
  });

  it('the runner stops at the first failing command and names its line: a failed && list and a failed pipeline count', async () => {
    const t = await tmpDir('readme-runner');
    try {
      const env = { PATH: process.env.PATH };
      const opts = { cwd: t.path, env, registryHost: '127.0.0.1:1', timeoutMs: 10_000 };
      const ok = shellBlocks('x\n```sh\ntrue\necho localhost:5000 > host\n```\n')[0]!;
      expect(await runBlock(ok, opts)).toBeUndefined();
      expect(execFileSync('cat', ['host'], { cwd: t.path }).toString()).toBe('127.0.0.1:1\n');
      const andList = shellBlocks('x\n```sh\ntrue\nfalse && true\ntouch reached\n```\n')[0]!;
      expect(await runBlock(andList, opts)).toMatchObject({ line: 4, command: 'false && true', code: 1 });
      const pipe = shellBlocks('x\n```sh\necho a\nsh -c "echo broken >&2; exit 3" | cat\ntouch reached\n```\n')[0]!;
      expect(await runBlock(pipe, opts)).toMatchObject({ line: 4, code: 3, output: expect.stringContaining('broken') });
      const slow = shellBlocks('x\n```sh\ntrue\nsleep 30 | cat\n```\n')[0]!;
      const started = Date.now();
      expect(await runBlock(slow, { ...opts, timeoutMs: 500 })).toMatchObject({ line: 4, command: 'sleep 30 | cat', code: 124 });
      expect(Date.now() - started).toBeLessThan(5000);
      await expect(stat(join(t.path, 'reached'))).rejects.toThrow();
    } finally {
      await t.remove();
    }
  });

  it('type-checks ts blocks against the built declarations, naming the README line of an error', async () => {
    const t = await tmpDir('readme-ts');
    try {
      const md = ['# t', '```ts', "import { OciLayout } from 'ocitool';", 'const l = await OciLayout.init(42);', 'console.log(l);', '```', ''].join('\n');
      const errors = await typecheckTsBlocks(md, ROOT, t.path);
      expect(errors[0]).toMatch(/^README\.md:4:\d+: error TS2345/);
    } finally {
      await t.remove();
    }
  });
});

describe('README.md', () => {
  const blocks = shellBlocks(readReadme(README));
  let reg: TestRegistry;
  let work: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    reg = await startRegistry({ schema1: true });
    work = await tmpDir('readme');
  });
  afterAll(async () => {
    await reg?.stop();
    await work?.remove();
  });

  it('marks few blocks as not runnable here, each for a reason that holds', () => {
    expect(blocks.length).toBeGreaterThan(10);
    expect(skipProblems(blocks, MAX_SKIPPED_SHARE)).toEqual([]);
  });

  it('every ts example type-checks against what the package ships', async () => {
    const dir = join(work.path, 'ts');
    await mkdir(dir);
    expect(await typecheckTsBlocks(readReadme(README), ROOT, dir)).toEqual([]);
  });

  it('every sh example runs as written, in order, from a fresh clone, against a local registry', async () => {
    const clone = join(work.path, 'clone');
    const home = join(work.path, 'home');
    const shims = join(work.path, 'shims');
    await mkdir(clone);
    await mkdir(home);
    await mkdir(shims);
    await cloneLike(clone);
    const refuse = async (name: string, why: string): Promise<void> => {
      await writeFile(join(shims, name), `#!/bin/sh\necho "readme test: ${why}" >&2\nexit 127\n`);
      await chmod(join(shims, name), 0o755);
    };
    await refuse('ocitool', 'ocitool is not on PATH in a fresh clone: call bin/ocitool');
    for (const npm of ['npm', 'npx']) await refuse(npm, `${npm} needs the npm registry: mark the block <!-- readme-test: skip: REASON -->`);
    const env = cleanEnv(home, shims);
    for (const block of blocks) {
      if (block.skip !== undefined) continue;
      const failure = await runBlock(block, { cwd: clone, env, registryHost: reg.host, timeoutMs: 60_000 });
      if (failure) expect.fail(`README.md line ${failure.line}: \`${failure.command}\` exited ${failure.code}:\n${failure.output}`);
    }
  }, 180_000);
});
