/**
 * The README's shell examples, as test/readme.test.ts runs them.
 *
 * Convention (README.md follows it; the test enforces it):
 * - Every shell example is a fenced block with the language `sh`; ```bash, ```shell, ```console and
 *   unlabelled opening fences are refused, so no example escapes the test by its label.
 * - One command per line; a line ending in `\` continues on the next. `#` lines are comments.
 * - Examples run in order, from the root of a fresh clone after `npm ci`, calling `bin/ocitool`.
 * - `localhost:5000` is the README's registry; the test puts its own registry there.
 * - A block that cannot run here is marked by the line just above its fence:
 *   `<!-- readme-test: skip: REASON -->`. Every command in it must be one that needs what the test
 *   may not use: `npm` (the npm registry) or a registry other than `localhost:5000`.
 * - ```ts blocks are library examples: they must type-check against the built declarations
 *   (`dist/index.d.ts`, what the package ships) as `import … from 'ocitool'`, each as a module of its own.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool } from './tools.js';

export const README_REGISTRY = 'localhost:5000';
const SHELL_LANGS = new Set(['', 'sh', 'bash', 'shell', 'console', 'zsh']);
const SKIP = /^<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->$/;

export interface Command {
  /** 1-based line in the markdown where the command starts. */
  line: number;
  /** The command's text, continuation lines included (joined with their newlines). */
  text: string;
}

export interface ShellBlock {
  /** 1-based line of the opening fence. */
  line: number;
  commands: Command[];
  /** The skip marker's reason, when the block is marked. */
  skip?: string;
}

export interface FencedBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The label after the fence, lower case ('' when none). */
  lang: string;
  body: string[];
  /** The line just above the fence. */
  above: string;
}

/** Every fenced code block of a markdown text, in order. Throws naming the line of an unclosed fence. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const lines = markdown.split('\n');
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[2]!;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.trim().startsWith(fence)) end++;
    if (end >= lines.length) throw new Error(`README line ${i + 1}: the code block opened here is never closed`);
    blocks.push({ line: i + 1, lang: open[3]!.toLowerCase(), body: lines.slice(i + 1, end), above: i > 0 ? lines[i - 1]!.trim() : '' });
    i = end;
  }
  return blocks;
}

/** The `sh` blocks of a markdown text, in order. Throws naming the line of a shell block with another label. */
export function shellBlocks(markdown: string): ShellBlock[] {
  const blocks: ShellBlock[] = [];
  for (const b of fencedBlocks(markdown)) {
    if (SHELL_LANGS.has(b.lang) && b.lang !== 'sh') throw new Error(`README line ${b.line}: label shell examples \`\`\`sh (this one is ${b.lang ? `\`\`\`${b.lang}` : 'unlabelled'}), so that test/readme.test.ts runs them`);
    if (b.lang !== 'sh') continue;
    const marker = SKIP.exec(b.above);
    blocks.push({ line: b.line, commands: commandsOf(b.body, b.line + 1), ...(marker ? { skip: marker[1]! } : {}) });
  }
  return blocks;
}

function commandsOf(body: string[], firstLine: number): Command[] {
  const out: Command[] = [];
  let cur: Command | undefined;
  body.forEach((text, k) => {
    if (cur) cur.text += `\n${text}`;
    else if (text.trim() !== '' && !text.trim().startsWith('#')) cur = { line: firstLine + k, text };
    else return;
    if (!/\\$/.test(text)) {
      out.push(cur);
      cur = undefined;
    }
  });
  if (cur) out.push(cur);
  return out;
}

/** Why a command may be skipped: it runs npm, or names a registry other than the README's. '' when it could run here. */
export function needsOutside(cmd: string): string {
  if (/^\s*(\S+=\S*\s+)*npm\s/.test(cmd)) return 'npm';
  const hosts = [...cmd.matchAll(/docker:\/\/([^/\s"']+)/g)].map((m) => m[1]!);
  const other = hosts.find((h) => h !== README_REGISTRY);
  return other ? `registry ${other}` : '';
}

/** Problems with the skip markers: too many, no reason, or a skipped command that could run here. */
export function skipProblems(blocks: ShellBlock[], maxShare: number): string[] {
  const problems: string[] = [];
  const skipped = blocks.filter((b) => b.skip !== undefined);
  if (skipped.length > Math.max(1, Math.floor(blocks.length * maxShare)))
    problems.push(`${skipped.length} of ${blocks.length} shell blocks are marked skip (at most ${Math.round(maxShare * 100)} %): make examples run against localhost:5000`);
  for (const b of skipped) {
    if (b.skip!.split(/\s+/).length < 3) problems.push(`README line ${b.line - 1}: a skip marker needs a reason of a few words`);
    for (const c of b.commands) if (!needsOutside(c.text)) problems.push(`README line ${c.line}: "${c.text.split('\n')[0]}" could run here: move it to a block the test runs`);
  }
  return problems;
}

export interface BlockFailure {
  line: number;
  command: string;
  code: number;
  output: string;
}

/**
 * Runs one block's commands with bash in `cwd`, stopping at the first that exits non-zero (a pipeline
 * fails when any part does; no `set -e`, whose exceptions would let `a && b` fail unseen).
 * `registryHost` replaces `localhost:5000` in every command. Before each command its line is written to
 * a file outside `cwd`, so a command killed by the time limit (exit 124) is named too.
 */
export async function runBlock(block: ShellBlock, opts: { cwd: string; env: NodeJS.ProcessEnv; registryHost: string; timeoutMs: number }): Promise<BlockFailure | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'ocitool-readme-progress-'));
  const progress = join(dir, 'line');
  const script = ['set -uo pipefail', `exec 3>${JSON.stringify(progress)}`];
  for (const c of block.commands) script.push(`echo ${c.line} >&3`, c.text.split(README_REGISTRY).join(opts.registryHost), 'rc=$?; [ $rc -eq 0 ] || exit $rc');
  try {
    // GNU timeout signals its whole process group: the command bash is running dies with bash.
    const limit = `${opts.timeoutMs / 1000}s`;
    const r = await runTool('timeout', ['-k', '2s', limit, 'bash', '-c', script.join('\n')], { cwd: opts.cwd, env: opts.env, timeoutMs: opts.timeoutMs + 5000 });
    if (r.code === 0) return undefined;
    const started = (await readFile(progress, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
    const line = Number(started.pop() ?? block.line);
    const command = block.commands.find((c) => c.line === line)?.text ?? '';
    const output = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-25).join('\n');
    return { line, command, code: r.code, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Type-checks every ```ts block with the project's tsc (strict, Node 20 modules), `ocitool` resolved to
 * `dist/index.d.ts`. Returns tsc's messages with each block's file position turned into a README line.
 */
export async function typecheckTsBlocks(markdown: string, root: string, dir: string): Promise<string[]> {
  const blocks = fencedBlocks(markdown).filter((b) => b.lang === 'ts');
  const files = blocks.map((b) => `readme-${b.line}.ts`);
  await Promise.all(blocks.map((b, k) => writeFile(join(dir, files[k]!), `${b.body.join('\n')}\nexport {};\n`)));
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  const compilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: 'es2022', lib: ['es2023'], module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], paths: { ocitool: [join(root, 'dist', 'index.d.ts')] } };
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files }));
  const r = await runTool(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: dir, timeoutMs: 60_000 });
  if (r.code === 0) return [];
  return `${r.stdout}${r.stderr}`.trim().split('\n').map((l) => l.replace(/^readme-(\d+)\.ts\((\d+),(\d+)\)/, (_, b: string, l2: string, c: string) => `README.md:${Number(b) + Number(l2)}:${c}`));
}

export const readReadme = (path: string): string => readFileSync(path, 'utf8');
