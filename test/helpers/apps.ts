/** The fixture app of `build --app` tests (testdata/app), installed with `npm ci`, and edited copies of it. */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { ok, runTool } from './tools.js';

/** Copies testdata/app to `dir` and installs its dependencies (dev ones too) as npm ci does. */
export async function installFixtureApp(dir: string): Promise<void> {
  await cp(join(ROOT, 'testdata/app'), dir, { recursive: true });
  await ok(runTool('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, timeoutMs: 90_000 }));
}

/** A copy of the installed app `from` at `to` (links kept as they are), changed by `edit` (package.json, lockfile, files). */
export async function appVariant(from: string, to: string, edit: (dir: string) => Promise<void> = async () => undefined): Promise<string> {
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
  await edit(to);
  return to;
}

/** Rewrites a JSON file through `f`. */
export async function editJson(file: string, f: (j: Record<string, unknown>) => void): Promise<void> {
  const j = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  f(j);
  await writeFile(file, JSON.stringify(j, null, 2));
}
