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
