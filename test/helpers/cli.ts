import { fileURLToPath } from 'node:url';
import { runTool, type ToolResult } from './tools.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = `${ROOT}bin/ocitool`;

export type RunResult = ToolResult;

/** Runs bin/ocitool (the built CLI) with a bounded time; never rejects on a non-zero exit. */
export function ocitool(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return runTool(process.execPath, [BIN, ...args], { ...opts, cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** The last non-empty line of a command's stdout (image commands print the digest there). */
export const lastLine = (s: string): string => s.trimEnd().split('\n').pop() ?? '';

/** The records of a `--json` run's stdout (JSON Lines), those of one event when `event` is given. */
export function jsonEvents<T = Record<string, unknown>>(stdout: string, event?: string): T[] {
  const all = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { event: string });
  return (event === undefined ? all : all.filter((e) => e.event === event)) as T[];
}
