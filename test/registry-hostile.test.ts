/**
 * Registries and files that try to hurt the client: credentials sent to another origin, secrets in
 * error messages, endless bodies, looping pagination, answers that never come, lengths left out.
 * Each builds its hostile input here (a fake server, a proxy rewriting a real registry's answers, a
 * broken config file) and checks the effect: exit code, one line naming the registry, time, memory.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, lastLine, ocitool, type RunResult } from './helpers/cli.js';
import { startFakeServer, startSilentServer, streamEndless, type FakeServer } from './helpers/fake-registry.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, TEST_USER, type TestRegistry } from './helpers/registry.js';
import { makeTree } from './helpers/trees.js';
import { ok, runTool, tmpDir } from './helpers/tools.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let work: string;
let removeWork: () => Promise<void>;
let layout: string;
let digest: string;
let rssPreload: string;
beforeAll(async () => {
  ({ path: work, remove: removeWork } = await tmpDir('hostile'));
  // A layer over the 8 MiB chunk size (it goes up in PATCH requests) and a small one (one PUT).
  await makeTree(join(work, 'a'), { 'small': 's' });
  await writeFile(join(work, 'a', 'random.bin'), randomBytes(9 * 1024 * 1024));
  await makeTree(join(work, 'b'), { 'b.txt': 'b'.repeat(1000) });
  layout = join(work, 'layout');
  await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', join(work, 'a'), '--compression', 'none']));
  digest = lastLine(await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--from', `oci:${layout}:v1`, '--add', join(work, 'b')])));
  // Loaded into the measured child: writes its peak RSS (KiB) where RSS_FILE says, at exit.
  rssPreload = join(work, 'rss.cjs');
  await writeFile(rssPreload, "process.on('exit', () => require('fs').writeFileSync(process.env.RSS_FILE, String(process.resourceUsage().maxRSS)));\n");
});
afterAll(async () => {
  await removeWork?.();
});

let runs = 0;
/** Runs the CLI as ocitool() does, also reporting the wall time and the child's peak RSS in MB. */
async function measured(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult & { ms: number; rssMb: number }> {
  const rssFile = join(work, `rss-${++runs}`);
  const started = Date.now();
  const r = await runTool(process.execPath, ['--require', rssPreload, BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env, RSS_FILE: rssFile }, timeoutMs: 30_000 });
  const ms = Date.now() - started;
  const kib = Number(await readFile(rssFile, 'utf8').catch(() => 'NaN'));
  return { ...r, ms, rssMb: kib / 1024 };
}

/** The failure line: exactly one line on stderr, starting with the registry's host. */
function oneLineNaming(r: RunResult, host: string): string {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`ocitool: ${host}: `), r.stderr).toBe(true);
  return lines[0]!;
}

async function withServer<T>(handler: (req: IncomingMessage, res: ServerResponse, self: FakeServer) => void, fn: (s: FakeServer) => Promise<T>): Promise<T> {
  let self: FakeServer | undefined;
  const s = await startFakeServer((req, res) => handler(req, res, self!));
  self = s;
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

/** `GET /v2/` answers 200 {}; everything else goes to `rest`. */
const registryLike =
  (rest: (req: IncomingMessage, res: ServerResponse, self: FakeServer) => void) =>
  (req: IncomingMessage, res: ServerResponse, self: FakeServer): void => {
    if (req.url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    rest(req, res, self);
  };

describe('credentials stay with the registry', () => {
  /**
   * Pushes through a proxy that moves every upload Location to a second origin (another port), which
   * records what it is sent and forwards it to the registry with credentials of its own.
   */
  async function pushViaSecondOrigin(reg: TestRegistry, forwardAuth: string, repo: string): Promise<FakeServer> {
    const [host, port] = reg.host.split(':');
    const second = await startFakeServer((req, res) => {
      const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: { ...req.headers, authorization: forwardAuth } }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const proxy = await startFaultProxy(reg.host, (_n, method, path) => (method === 'POST' && path.includes('/blobs/uploads/') ? { relocate: second.origin } : 'none'));
    try {
      const r = await ocitool(['push', '--creds', `${reg.username}:${reg.password}`, `oci:${layout}:v1`, `docker://${proxy.host}/${repo}:v1`], { env: { OCITOOL_CACHE_DIR: join(work, `cache-${repo.replace('/', '-')}`) } });
      expect(r.code, r.stderr).toBe(0);
      expect(lastLine(r.stdout)).toBe(digest);
    } finally {
      await proxy.stop();
      await second.stop();
    }
    return second;
  }

  it.each(['htpasswd', 'token'] as const)('an upload Location on another origin never gets the Authorization header (%s)', async (auth) => {
    const reg = await startRegistry({ auth });
    try {
      const repo = `far/${auth}`;
      const forwardAuth =
        auth === 'htpasswd' ? `Basic ${Buffer.from(`${reg.username}:${reg.password}`).toString('base64')}` : `Bearer ${reg.tokenServer!.sign(TEST_USER, [{ type: 'repository', name: repo, actions: ['pull', 'push'] }])}`;
      const second = await pushViaSecondOrigin(reg, forwardAuth, repo);
      // The uploads went there: PATCH chunks of the big layer and the PUTs that commit each blob.
      const methods = second.seen.map((s) => s.method);
      expect(methods).toContain('PATCH');
      expect(methods.filter((m) => m === 'PUT').length).toBeGreaterThanOrEqual(3);
      expect(second.seen.filter((s) => s.headers.authorization !== undefined)).toEqual([]);
      // And the image arrived whole.
      const out = join(work, `far-${auth}`);
      await ok(ocitool(['pull', '--creds', `${reg.username}:${reg.password}`, `docker://${reg.host}/${repo}:v1`, `oci:${out}:v1`]));
      await ok(ocitool(['verify', '--diff-ids', out]));
    } finally {
      await reg.stop();
    }
  });
});

describe('secrets in error messages', () => {
  const SECRET = 'hunter2-Sekr1t-7f3a';
  it.each([
    ['DOCKER_CONFIG', `{"auths": {"127.0.0.1:9": {"auth": ${SECRET}}}}`, 'line 1, column 36'],
    ['REGISTRY_AUTH_FILE', `{\n  "auths": {\n    "127.0.0.1:9": {"username": "u", "password": "${SECRET}"\n  }\n`, 'line 5, column 1'],
  ])('a %s file with a syntax error is named with the position, never quoted', async (kind, text, where) => {
    const dir = join(work, `secret-${kind}`);
    await mkdir(dir, { recursive: true });
    const file = join(dir, kind === 'DOCKER_CONFIG' ? 'config.json' : 'auth.json');
    await writeFile(file, text);
    const env = { HOME: dir, XDG_RUNTIME_DIR: '', ...(kind === 'DOCKER_CONFIG' ? { DOCKER_CONFIG: dir, REGISTRY_AUTH_FILE: '' } : { REGISTRY_AUTH_FILE: file }) };
    for (const debug of [[], ['--debug']]) {
      const r = await ocitool([...debug, 'inspect', 'docker://127.0.0.1:9/x/y:latest'], { env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.split('\n')[0]).toBe(`ocitool: ${file}: malformed JSON at ${where} (content not shown: it may hold credentials)`);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      expect(r.stdout + r.stderr).not.toContain('hunter2');
      if (debug.length === 0) expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('credentials in proxy URLs', () => {
  it('HTTPS_PROXY with user:password, and a proxy that refuses: the password is in no message (--debug too)', async () => {
    const { createServer } = await import('node:http');
    const seen: (string | undefined)[] = [];
    const proxy = createServer((_req, res) => res.writeHead(400).end());
    proxy.on('connect', (req: IncomingMessage, socket: Socket) => {
      seen.push(req.headers['proxy-authorization']);
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const password = 'pr0xy-Secr3t-91';
    const url = `http://someone:${password}@127.0.0.1:${(proxy.address() as { port: number }).port}`;
    try {
      for (const debug of [[], ['--debug']]) {
        // The registry's name is never resolved or reached: the client only talks to the proxy.
        const r = await ocitool([...debug, 'inspect', '--timeout', '5', 'docker://registry.example.invalid/x/y:latest'], { env: { https_proxy: url, HTTPS_PROXY: url, no_proxy: '', NO_PROXY: '' } });
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/^ocitool: registry\.example\.invalid: .*407/);
        for (const secret of [password, Buffer.from(`someone:${password}`).toString('base64')]) expect(r.stdout + r.stderr).not.toContain(secret);
      }
      // The proxy was asked, with the credentials (so they were there to leak).
      expect(seen[0]).toBe(`Basic ${Buffer.from(`someone:${password}`).toString('base64')}`);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});

describe('bodies are capped while they stream', () => {
  const check = (r: RunResult & { ms: number; rssMb: number }, host: string): string => {
    expect(r.code, r.stderr).toBe(1);
    expect(r.ms).toBeLessThan(10_000);
    expect(r.rssMb).toBeLessThan(300);
    return oneLineNaming(r, host);
  };

  it('an endless manifest', async () => {
    await withServer(
      registryLike((req, res) => {
        res.writeHead(200, { 'content-type': OCI_MANIFEST });
        if (req.method === 'HEAD') res.end();
        else streamEndless(res);
      }),
      async (s) => {
        const line = check(await measured(['inspect', `docker://${s.host}/x/y:latest`]), s.host);
        expect(line).toMatch(/manifest latest of x\/y: .*limit/);
      },
    );
  });

  it('an endless error body (1 GiB stated)', async () => {
    await withServer(
      registryLike((req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': OCI_MANIFEST }).end();
          return;
        }
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': String(1024 ** 3) });
        streamEndless(res, 1024 ** 3, ' ');
      }),
      async (s) => {
        const line = check(await measured(['inspect', `docker://${s.host}/x/y:latest`]), s.host);
        expect(line).toMatch(/manifest latest of x\/y: not found \(404\)/);
      },
    );
  });

  it('an endless token answer', async () => {
    await withServer(
      (req, res, self) => {
        if (req.url?.startsWith('/token')) {
          res.writeHead(200, { 'content-type': 'application/json' });
          streamEndless(res, undefined, ' ');
          return;
        }
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': `Bearer realm="${self.origin}/token",service="fake"` }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      },
      async (s) => {
        const line = check(await measured(['inspect', `docker://${s.host}/x/y:latest`]), s.host);
        expect(line).toMatch(/token server http:\/\/127\.0\.0\.1:\d+: .*limit/);
      },
    );
  });
});

describe('tags list pagination', () => {
  it('a Link naming the same page again, or an earlier one, ends the listing', async () => {
    for (const shape of ['same', 'cycle'] as const) {
      await withServer(
        registryLike((req, res) => {
          const second = req.url?.includes('last=b') ?? false;
          const next = shape === 'same' ? '/v2/x/tags/list?n=1000' : second ? '/v2/x/tags/list?n=1000' : '/v2/x/tags/list?n=1000&last=b';
          res.writeHead(200, { 'content-type': 'application/json', link: `<${next}>; rel="next"` }).end(JSON.stringify({ name: 'x', tags: second ? ['c', 'd'] : ['a', 'b'] }));
        }),
        async (s) => {
          const started = Date.now();
          const r = await ocitool(['ls', `docker://${s.host}/x`], { timeoutMs: 20_000 });
          expect(r.code, r.stderr).toBe(0);
          expect(Date.now() - started).toBeLessThan(10_000);
          expect(r.stdout.trim().split('\n')).toEqual(shape === 'same' ? ['a', 'b'] : ['a', 'b', 'c', 'd']);
          expect(s.seen.filter((q) => q.url.includes('/tags/list')).length).toBe(shape === 'same' ? 1 : 2);
        },
      );
    }
  });
});

describe('answers that never come', () => {
  it('a status line, then nothing: --timeout 3 ends it with one line saying it timed out', async () => {
    const s = await startSilentServer('HTTP/1.1 200 OK\r\n');
    try {
      const started = Date.now();
      const r = await ocitool(['inspect', '--timeout', '3', `docker://${s.host}/x/y:latest`], { timeoutMs: 30_000 });
      const ms = Date.now() - started;
      expect(r.code, r.stderr).toBe(1);
      expect(ms).toBeGreaterThanOrEqual(3_000);
      expect(ms).toBeLessThan(10_000);
      expect(oneLineNaming(r, s.host)).toMatch(/timed out: no answer within 3 s/);
    } finally {
      await s.stop();
    }
  });

  it('a body that stalls mid-stream times out (a resume that brings nothing new ends it)', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }, layers: [], pad: 'p'.repeat(4000) }));
    const { createHash } = await import('node:crypto');
    const d = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    await withServer(
      registryLike((req, res) => {
        res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(manifest.length), 'docker-content-digest': d });
        if (req.method === 'HEAD') res.end();
        else res.write(manifest.subarray(0, 1000)); // and never the rest
      }),
      async (s) => {
        const started = Date.now();
        const r = await ocitool(['inspect', '--timeout', '2', `docker://${s.host}/x/y:latest`], { timeoutMs: 30_000 });
        expect(r.code, r.stderr).toBe(1);
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(oneLineNaming(r, `manifest ${d} of x/y (from ${s.host})`)).toMatch(/timed out: the answer stalled for 2 s/);
        expect(s.seen.filter((q) => q.method === 'GET' && q.url.includes('/manifests/')).length).toBe(2);
      },
    );
  });

  it('--timeout takes only a number of seconds', async () => {
    const r = await ocitool(['inspect', '--timeout', 'soon', 'docker://127.0.0.1:9/x/y:latest']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('ocitool: --timeout soon: expected a number of seconds, e.g. --timeout 30');
  });
});

describe('a HEAD answer without Content-Length', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
    await ok(ocitool(['push', `oci:${layout}:v1`, `docker://${reg.host}/nolen/img:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'cache-nolen') } }));
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('is no size: resolve and pull fall back to a GET', async () => {
    const proxy = await startFaultProxy(reg.host, (_n, method) => (method === 'HEAD' ? 'no-length' : 'none'));
    try {
      const out = join(work, 'nolen');
      const r = await ocitool(['pull', `docker://${proxy.host}/nolen/img:v1`, `oci:${out}:v1`]);
      expect(r.code, r.stderr).toBe(0);
      expect(lastLine(r.stdout)).toBe(digest);
      await ok(ocitool(['verify', '--diff-ids', out]));
      expect(proxy.log.some((l) => l.method === 'HEAD' && l.fault === 'no-length')).toBe(true);
      expect(proxy.log.some((l) => l.method === 'GET' && l.path === '/v2/nolen/img/manifests/v1')).toBe(true);
    } finally {
      await proxy.stop();
    }
  });
});
