/**
 * Running the external tools the tests compare against (skopeo, umoci, openssl, ...), and temp dirs.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ToolResult {
  /** Exit code; 128 + the signal's number when a signal ended it (137 for the timeout's SIGKILL). */
  code: number;
  stdout: string;
  stderr: string;
  /** True when the time limit killed the program. */
  timedOut?: boolean;
}

export interface ToolOptions {
  cwd?: string;
  /** The whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Kill (SIGKILL) after this many ms; default 120 000. */
  timeoutMs?: number;
  /** Written to stdin; without it stdin is /dev/null. */
  input?: string;
}

/** Runs a program (no shell) with a time limit that kills it; never rejects on a non-zero exit, only when it cannot start. */
export function runTool(cmd: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    let timedOut = false;
    const limit = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limit);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString();
      if (timedOut) stderr += `\n[runTool: ${cmd} killed after ${limit} ms]\n`;
      resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout: Buffer.concat(out).toString(), stderr, ...(timedOut ? { timedOut } : {}) });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // the program may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/**
 * skopeo with the global `--insecure-policy` (tests have no /etc/containers/policy.json to rely on).
 * For a test registry add the transport flags yourself, e.g. `skopeoRegistryFlags(reg, 'dest')` from
 * ./registry.js (`--dest-tls-verify=false --dest-creds user:pass`).
 */
export const skopeo = (args: string[], opts?: ToolOptions): Promise<ToolResult> => runTool('skopeo', ['--insecure-policy', ...args], opts);

export const umoci = (args: string[], opts?: ToolOptions): Promise<ToolResult> => runTool('umoci', args, opts);

/**
 * A fresh directory `$TMPDIR/ocitool-PREFIX-XXXXXX` and its remover: the caller owns the cleanup,
 * typically `const t = await tmpDir('x'); afterAll(t.remove)` or `onTestFinished(t.remove)`.
 */
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
