/**
 * Starts the real registry (Debian's docker-registry, distribution 2.8) on a random loopback port,
 * with no auth, htpasswd basic auth, or bearer tokens from the tests' own TokenServer.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenServer } from './token-server.js';

export type AuthMode = 'none' | 'htpasswd' | 'token';
export const TEST_USER = 'ocitool';
export const TEST_PASSWORD = 'ocitool-pass';
export const TOKEN_SERVICE = 'ocitool-test-registry';
export const TOKEN_ISSUER = 'ocitool-test-issuer';

export interface RegistryOptions {
  auth?: AuthMode;
  /** Accept schema 1 manifests (`compatibility: schema1: enabled: true`). */
  schema1?: boolean;
  /** Token mode: anonymous clients may pull. */
  allowAnonymousPull?: boolean;
  /** Token mode: token lifetime in seconds. */
  tokenExpiresIn?: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  auth: AuthMode;
  username?: string;
  password?: string;
  dataDir: string;
  tokenServer?: TokenServer;
  /** The registry's stderr so far (for failing tests). */
  log(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function config(dir: string, port: number, opts: RegistryOptions, auth: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    auth,
    ...(opts.schema1 ? ['compatibility:', '  schema1:', '    enabled: true'] : []),
    '',
  ].join('\n');
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    try {
      const r = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200 || r.status === 401) return true;
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  throw new Error(`registry at ${url} did not come up in 15 s: ${log()}`);
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  const dir = await mkdtemp(join(tmpdir(), 'ocitool-registry-'));
  let tokenServer: TokenServer | undefined;
  let authYaml = '';
  if (auth === 'htpasswd') {
    const line = execFileSync('htpasswd', ['-Bbn', TEST_USER, TEST_PASSWORD]).toString().trim();
    await writeFile(join(dir, 'htpasswd'), `${line}\n`);
    authYaml = ['auth:', '  htpasswd:', '    realm: ocitool-test', `    path: ${join(dir, 'htpasswd')}`].join('\n');
  } else if (auth === 'token') {
    tokenServer = new TokenServer({
      dir,
      service: TOKEN_SERVICE,
      issuer: TOKEN_ISSUER,
      users: { [TEST_USER]: TEST_PASSWORD },
      ...(opts.allowAnonymousPull ? { allowAnonymousPull: true } : {}),
      ...(opts.tokenExpiresIn !== undefined ? { expiresIn: opts.tokenExpiresIn } : {}),
    });
    await tokenServer.start();
    authYaml = ['auth:', '  token:', `    realm: ${tokenServer.url}`, `    service: ${TOKEN_SERVICE}`, `    issuer: ${TOKEN_ISSUER}`, `    rootcertbundle: ${tokenServer.certFile}`].join('\n');
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const cfg = join(dir, 'config.yml');
    await writeFile(cfg, config(dir, port, opts, authYaml));
    let stderr = '';
    const child = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
    const url = `http://127.0.0.1:${port}`;
    const up = await waitReady(url, child, () => stderr).catch(async (err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
    if (!up) {
      if (attempt < 3 && /address already in use/.test(stderr)) continue;
      await tokenServer?.stop();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry exited at start: ${stderr}`);
    }
    const stop = async (): Promise<void> => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      await tokenServer?.stop();
      await rm(dir, { recursive: true, force: true });
    };
    return {
      host: `127.0.0.1:${port}`,
      url,
      auth,
      ...(auth !== 'none' ? { username: TEST_USER, password: TEST_PASSWORD } : {}),
      dataDir: join(dir, 'data'),
      ...(tokenServer ? { tokenServer } : {}),
      log: () => stderr,
      stop,
    };
  }
}

/** skopeo flags to reach a test registry: no TLS, and the right credentials for its auth mode. */
export function skopeoRegistryFlags(reg: TestRegistry, role: 'src' | 'dest' | 'plain', creds = reg.username ? `${reg.username}:${reg.password}` : undefined): string[] {
  const p = role === 'plain' ? '' : `${role}-`;
  return [`--${p}tls-verify=false`, ...(creds ? [`--${p}creds`, creds] : [])];
}
