/**
 * Starts the real registry (Debian's docker-registry, distribution 2.8) on a random loopback port,
 * with no auth, htpasswd basic auth, or bearer tokens from the tests' own TokenServer.
 *
 *   const reg = await startRegistry({ auth: 'token' });
 *   try { ... skopeo(['copy', ...skopeoRegistryFlags(reg, 'dest'), src, `docker://${reg.host}/a/b:t`]) ... }
 *   finally { await reg.stop(); }
 *
 * Everything (config, htpasswd file, token key and certificate, blobs) lives in one mkdtemp directory
 * that stop() removes. Registries still running when the test process exits are killed.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenServer } from './token-server.js';
import { Agent, fetch as undiciFetch } from 'undici';

/** For the readiness probe of a TLS registry (its certificate is self-signed). */
const unverified = new Agent({ connect: { rejectUnauthorized: false } });

export { TokenServer } from './token-server.js';
export type AuthMode = 'none' | 'htpasswd' | 'token';
export const TEST_USER = 'ocitool';
export const TEST_PASSWORD = 'ocitool-pass';
export const TOKEN_SERVICE = 'ocitool-test-registry';
export const TOKEN_ISSUER = 'ocitool-test-issuer';

const START_TIMEOUT_MS = 15_000;

export interface RegistryOptions {
  auth?: AuthMode;
  /** Accept schema 1 manifests (`compatibility: schema1: enabled: true`). */
  schema1?: boolean;
  /** Token mode: anonymous clients may pull. */
  allowAnonymousPull?: boolean;
  /** Token mode: token lifetime in seconds (see TokenServerOptions.expiresIn; the registry allows 60 s of leeway). */
  tokenExpiresIn?: number;
  /** Token mode: how tokens name their signing key (default 'x5c'). */
  tokenKeyHint?: 'x5c' | 'kid';
  /**
   * Serve HTTPS with a self-signed certificate (made with openssl) for 127.0.0.1, localhost and the
   * given extra DNS names; `caFile` in the result is the certificate to trust.
   */
  tls?: { dnsNames?: string[] };
  /** Allow DELETE (default true; distribution's storage.delete.enabled). */
  deleteEnabled?: boolean;
  /** Where the registry keeps its blobs (default: inside its temp directory); kept by stop() (the benchmark's choice). */
  storage?: string;
  /**
   * Record every request the registry answers (its info-level "response completed" lines), for
   * requests(). Off by default: the registry logs warnings only, and log() keeps only its tail.
   */
  recordRequests?: boolean;
}

/** A request the registry answered, from its own log. */
export interface RegistryRequest {
  method: string;
  /** The path and query, e.g. `/v2/base/blobs/sha256:…`. */
  uri: string;
  status: number;
  /** Response body bytes the registry sent. */
  written: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` (https with the tls option) */
  url: string;
  /** With the tls option: the registry's self-signed certificate (PEM). */
  caFile?: string;
  auth: AuthMode;
  /** Set in htpasswd and token modes (TEST_USER / TEST_PASSWORD). */
  username?: string;
  password?: string;
  /** The registry's filesystem storage root. */
  dataDir: string;
  tokenServer?: TokenServer;
  /** The registry's stderr so far (for failing tests). */
  log(): string;
  /**
   * With recordRequests: every request answered so far, in order. The registry logs a request after
   * answering it, so this first asks for a marker (GET /v2/?mark=…) and waits (5 s at most) for
   * its line: every request answered before the call is in the list, the marker is not.
   */
  requests(): Promise<RegistryRequest[]>;
  /** Kills the registry (SIGTERM, SIGKILL after 3 s), stops the token server, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

// Registries left running (a test that forgot stop(), a worker torn down early) die with this process.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

const running = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

async function kill(child: ChildProcess): Promise<void> {
  if (!running(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function config(dir: string, port: number, opts: RegistryOptions, auth: string[]): string {
  const tls = opts.tls ? ['  tls:', `    certificate: ${join(dir, 'tls.crt')}`, `    key: ${join(dir, 'tls.key')}`] : [];
  return [
    'version: 0.1',
    'log:',
    `  level: ${opts.recordRequests ? 'info' : 'warn'}`,
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${opts.storage ?? join(dir, 'data')}`,
    '  delete:',
    `    enabled: ${opts.deleteEnabled ?? true}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    ...tls,
    'health:',
    '  storagedriver:',
    '    enabled: false',
    ...auth,
    ...(opts.schema1 ? ['compatibility:', '  schema1:', '    enabled: true'] : []),
    '',
  ].join('\n');
}

/** Resolves 'up' once GET /v2/ answers 200 or 401, 'exited' if the registry died (its stderr fully read), 'timeout' otherwise. */
async function waitReady(url: string, child: ChildProcess, closed: Promise<void>): Promise<'up' | 'exited' | 'timeout'> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!running(child)) {
      await closed;
      return 'exited';
    }
    try {
      const r = await undiciFetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000), dispatcher: unverified });
      await r.arrayBuffer().catch(() => undefined);
      if (r.status === 200 || r.status === 401) return 'up';
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  return 'timeout';
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  const dir = await mkdtemp(join(tmpdir(), 'ocitool-registry-'));
  let tokenServer: TokenServer | undefined;
  const cleanup = async (): Promise<void> => {
    await tokenServer?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    let authYaml: string[] = [];
    if (auth === 'htpasswd') {
      // distribution only accepts bcrypt entries.
      const line = execFileSync('htpasswd', ['-Bbn', TEST_USER, TEST_PASSWORD], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
      await writeFile(join(dir, 'htpasswd'), `${line}\n`);
      authYaml = ['auth:', '  htpasswd:', '    realm: ocitool-test', `    path: ${join(dir, 'htpasswd')}`];
    } else if (auth === 'token') {
      tokenServer = new TokenServer({
        dir,
        service: TOKEN_SERVICE,
        issuer: TOKEN_ISSUER,
        users: { [TEST_USER]: TEST_PASSWORD },
        ...(opts.allowAnonymousPull ? { allowAnonymousPull: true } : {}),
        ...(opts.tokenExpiresIn !== undefined ? { expiresIn: opts.tokenExpiresIn } : {}),
        ...(opts.tokenKeyHint ? { keyHint: opts.tokenKeyHint } : {}),
      });
      await tokenServer.start();
      authYaml = ['auth:', '  token:', `    realm: ${tokenServer.url}`, `    service: ${TOKEN_SERVICE}`, `    issuer: ${TOKEN_ISSUER}`, `    rootcertbundle: ${tokenServer.certFile}`];
    }
    if (opts.tls) {
      const san = ['IP:127.0.0.1', 'DNS:localhost', ...(opts.tls.dnsNames ?? []).map((n) => `DNS:${n}`)].join(',');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '2', '-subj', '/CN=ocitool-test-registry', '-addext', `subjectAltName=${san}`], { stdio: 'pipe' });
    }
    const cfg = join(dir, 'config.yml');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      await writeFile(cfg, config(dir, port, opts, authYaml));
      let stderr = '';
      const requests: RegistryRequest[] = [];
      let partial = '';
      const child = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
      track(child);
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
      child.stderr!.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-20_000);
        if (!opts.recordRequests) return;
        const lines = (partial + c.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          const r = responseLine(line);
          if (r) requests.push(r);
        }
      });
      const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      const state = await Promise.race([waitReady(url, child, closed), spawnError]).catch(async (err: unknown) => {
        await kill(child);
        throw err;
      });
      if (state === 'timeout') {
        await kill(child);
        throw new Error(`docker-registry at ${url} did not answer GET /v2/ within ${START_TIMEOUT_MS / 1000} s; stderr:\n${stderr}`);
      }
      if (state === 'exited') {
        // Another process took the port between freePort() and the registry's listen(): try another.
        if (attempt < 5 && /address already in use/i.test(stderr)) continue;
        throw new Error(`docker-registry exited at start (code ${child.exitCode}, signal ${child.signalCode}); stderr:\n${stderr}`);
      }
      let stopping: Promise<void> | undefined;
      return {
        host: `127.0.0.1:${port}`,
        url,
        auth,
        ...(auth !== 'none' ? { username: TEST_USER, password: TEST_PASSWORD } : {}),
        dataDir: join(dir, 'data'),
        ...(opts.tls ? { caFile: join(dir, 'tls.crt') } : {}),
        ...(tokenServer ? { tokenServer } : {}),
        log: () => stderr,
        requests: async () => {
          if (!opts.recordRequests) throw new Error('startRegistry: requests() needs the recordRequests option');
          const mark = `/v2/?mark=${randomBytes(6).toString('hex')}`;
          const r = await undiciFetch(`${url}${mark}`, { dispatcher: unverified });
          await r.arrayBuffer();
          for (const deadline = Date.now() + 5000; !requests.some((q) => q.uri === mark); await sleep(10)) {
            if (Date.now() > deadline) throw new Error(`docker-registry at ${url} did not log the request ${mark} within 5 s`);
          }
          return requests.filter((q) => !q.uri.startsWith('/v2/?mark='));
        },
        stop: () => (stopping ??= kill(child).then(cleanup)),
      };
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** A request from one of distribution's "response completed" log lines (logfmt), or undefined for any other line. */
function responseLine(line: string): RegistryRequest | undefined {
  if (!/msg="response completed/.test(line)) return undefined;
  const field = (name: string): string | undefined => new RegExp(`(?:^| )${name.replace(/\./g, '\\.')}=("(?:[^"\\\\]|\\\\.)*"|\\S*)`).exec(line)?.[1]?.replace(/^"(.*)"$/, '$1');
  const method = field('http.request.method');
  const uri = field('http.request.uri');
  if (method === undefined || uri === undefined) return undefined;
  return { method, uri, status: Number(field('http.response.status') ?? 0), written: Number(field('http.response.written') ?? 0) };
}

/**
 * skopeo flags to reach a test registry: no TLS, and the right credentials for its auth mode.
 * role 'src'/'dest' for `copy`, 'plain' for `inspect`, `list-tags`, `delete`.
 */
export function skopeoRegistryFlags(reg: TestRegistry, role: 'src' | 'dest' | 'plain', creds = reg.username ? `${reg.username}:${reg.password}` : undefined): string[] {
  const p = role === 'plain' ? '' : `${role}-`;
  return [`--${p}tls-verify=false`, ...(creds ? [`--${p}creds`, creds] : [])];
}
