import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program (no shell) with a time limit that kills it; never rejects on a non-zero exit. */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the program may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** skopeo with `--insecure-policy` (tests have no /etc/containers/policy.json to rely on). */
export const skopeo = (args: string[], opts?: Parameters<typeof runTool>[2]): Promise<ToolResult> => runTool('skopeo', ['--insecure-policy', ...args], opts);

export const umoci = (args: string[], opts?: Parameters<typeof runTool>[2]): Promise<ToolResult> => runTool('umoci', args, opts);

/** A fresh temp directory and its remover. */
export async function tmpDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `ocitool-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Awaits a run and returns its stdout; a non-zero exit throws with the program's stderr. */
export async function ok(p: Promise<ToolResult>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
