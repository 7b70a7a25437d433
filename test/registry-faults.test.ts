/** Push and pull through a proxy that injects 503s, 429s, dropped connections and corrupt bytes. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { lastLine, ocitool } from './helpers/cli.js';
import { startFaultProxy, type Fault, type FaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { makeTree } from './helpers/trees.js';
import { ok } from './helpers/tools.js';

let work: string;
let layout: string;
let digest: string;
let reg: TestRegistry;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-faults-'));
  await makeTree(join(work, 'a'), { 'big.bin': 'A'.repeat(300_000), 'small': 's' });
  await makeTree(join(work, 'b'), { 'other.bin': 'B'.repeat(200_000) });
  layout = join(work, 'layout');
  await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', join(work, 'a'), '--compression', 'none']));
  digest = lastLine(await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--from', `oci:${layout}:v1`, '--add', join(work, 'b'), '--compression', 'none'])));
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

/** Runs `fn` with a fault proxy in front of the registry at `target`, stopped afterwards. */
async function withProxyTo<T>(target: string, decide: (n: number, method: string, path: string) => Fault, fn: (p: FaultProxy) => Promise<T>): Promise<T> {
  const p = await startFaultProxy(target, decide);
  try {
    return await fn(p);
  } finally {
    await p.stop();
  }
}

function withProxy<T>(decide: (n: number, method: string, path: string) => Fault, fn: (p: FaultProxy) => Promise<T>): Promise<T> {
  return withProxyTo(reg.host, decide, fn);
}

describe('through a misbehaving proxy', () => {
  it('push succeeds despite 503s and a 429 with Retry-After', async () => {
    await withProxy(
      (n) => (n === 2 ? '429' : n % 3 === 0 ? '503' : 'none'),
      async (p) => {
        const r = await ocitool(['push', `oci:${layout}:v1`, `docker://${p.host}/faults/push:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c1') } });
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(digest);
        expect(p.log.filter((l) => l.fault === '503').length).toBeGreaterThan(2);
        expect(p.log.some((l) => l.fault === '429')).toBe(true);
      },
    );
    // The image arrived whole: pull it straight from the registry and verify.
    await ok(ocitool(['pull', `docker://${reg.host}/faults/push:v1`, `oci:${join(work, 'check')}:v1`]));
    await ok(ocitool(['verify', '--diff-ids', join(work, 'check')]));
  });

  it('pull succeeds when blob downloads drop mid-body once each', async () => {
    const dropped = new Set<string>();
    await withProxy(
      (_n, method, path) => {
        if (method === 'GET' && path.includes('/blobs/sha256:') && !dropped.has(path)) {
          dropped.add(path);
          return 'drop';
        }
        return 'none';
      },
      async (p) => {
        const out = join(work, 'pulled');
        const r = await ocitool(['pull', `docker://${p.host}/faults/push:v1`, `oci:${out}:v1`]);
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(digest);
        expect(dropped.size).toBe(3); // config and two layers
        // Each dropped download carried on from the byte it got to, instead of starting over.
        for (const path of dropped) {
          const again = p.log.filter((l) => l.path === path && l.fault === 'none');
          expect(again.length).toBe(1);
          expect(again[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
        }
        await ok(ocitool(['verify', '--diff-ids', out]));
      },
    );
  });

  it('pull fails with a digest error when blob bytes are corrupted, and stores nothing under a wrong name', async () => {
    await withProxy(
      (_n, method, path) => (method === 'GET' && path.includes('/blobs/sha256:') ? 'corrupt' : 'none'),
      async (p) => {
        const out = join(work, 'corrupt');
        const r = await ocitool(['pull', `docker://${p.host}/faults/push:v1`, `oci:${out}:v1`]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^ocitool: .*sha256:[0-9a-f]{64}.*hashes to sha256:[0-9a-f]{64}, expected/);
        // Nothing was stored, so the layout the pull made is gone again (no blob, no tag, no temp file).
        expect(existsSync(out)).toBe(false);
      },
    );
  });
});

describe('uploads', () => {
  // A 20 MiB layer: one streaming PATCH by default; 8 MiB PATCH chunks (Content-Range) with --chunk-size.
  let bigLayout: string;
  let bigDigest: string;
  beforeAll(async () => {
    const { randomBytes } = await import('node:crypto');
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(join(work, 'chunky'), { recursive: true });
    await writeFile(join(work, 'chunky', 'random.bin'), randomBytes(20 * 1024 * 1024));
    bigLayout = join(work, 'chunky-layout');
    bigDigest = lastLine(await ok(ocitool(['build', '--tag', `oci:${bigLayout}:v1`, '--add', join(work, 'chunky'), '--compression', 'none'])));
  });

  const patches = (p: FaultProxy) => p.log.filter((l) => l.method === 'PATCH');

  it('sends a large blob as one streaming PATCH, then the digest in an empty PUT', async () => {
    await withProxy(
      () => 'none',
      async (p) => {
        const r = await ocitool(['push', `oci:${bigLayout}:v1`, `docker://${p.host}/faults/streamed:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c3') } });
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(bigDigest);
        expect(patches(p)).toHaveLength(1);
        expect(patches(p)[0]!.contentRange).toBeUndefined();
        // The layer went up once: 20 MiB and a bit of tar headers, no more.
        expect(p.bytesIn.PATCH).toBeGreaterThan(20 * 1024 * 1024);
        expect(p.bytesIn.PATCH).toBeLessThan(21 * 1024 * 1024);
        expect(p.bytesIn.PUT ?? 0).toBeLessThan(4096); // the config; the layer's PUT is empty
      },
    );
    await ok(ocitool(['pull', `docker://${reg.host}/faults/streamed:v1`, `oci:${join(work, 'streamed-check')}:v1`]));
    await ok(ocitool(['verify', '--diff-ids', join(work, 'streamed-check')]));
  });

  it('honours OCI-Chunk-Min-Length from the registry: chunks of that size', async () => {
    await withProxy(
      (_n, method, path) => (method === 'POST' && path.includes('/blobs/uploads/') ? { addHeaders: { 'oci-chunk-min-length': String(4 * 1024 * 1024) } } : 'none'),
      async (p) => {
        const r = await ocitool(['push', `oci:${bigLayout}:v1`, `docker://${p.host}/faults/minchunk:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c3m') } });
        if (r.code !== 0) throw new Error(r.stderr);
        const M = 4 * 1024 * 1024;
        const sent = patches(p).map((l) => l.contentRange);
        expect(sent).toHaveLength(6); // 20 MiB and the tar headers in 4 MiB chunks
        expect(sent.slice(0, 2)).toEqual([`0-${M - 1}`, `${M}-${2 * M - 1}`]);
      },
    );
    await ok(ocitool(['pull', `docker://${reg.host}/faults/minchunk:v1`, `oci:${join(work, 'minchunk-check')}:v1`]));
    await ok(ocitool(['verify', '--diff-ids', join(work, 'minchunk-check')]));
  });

  it('a final PUT that the registry committed but whose answer was lost (504, cut connection) is no failure', async () => {
    for (const lost of ['504', 'drop'] as const) {
      let done = false;
      await withProxy(
        (_n, method, path) => {
          if (method === 'PUT' && path.includes('digest=') && !done) {
            done = true;
            return { lost };
          }
          return 'none';
        },
        async (p) => {
          const r = await ocitool(['push', `oci:${bigLayout}:v1`, `docker://${p.host}/faults/lost-${lost}:v1`], { env: { OCITOOL_CACHE_DIR: join(work, `c-lost-${lost}`) } });
          if (r.code !== 0) throw new Error(r.stderr);
          expect(lastLine(r.stdout)).toBe(bigDigest);
          // The blob was asked for (HEAD) after the PUT failed, and not uploaded again.
          const i = p.log.findIndex((l) => typeof l.fault === 'object' && 'lost' in l.fault);
          expect(i).toBeGreaterThan(-1);
          expect(p.log.slice(i + 1).some((l) => l.method === 'HEAD' && l.path.includes(p.log[i]!.path.match(/digest=(sha256%3A|sha256:)([0-9a-f]{64})/)![2]!))).toBe(true);
          expect(p.log.filter((l) => l.method === 'PATCH')).toHaveLength(1);
        },
      );
      await ok(ocitool(['pull', `docker://${reg.host}/faults/lost-${lost}:v1`, `oci:${join(work, `lost-${lost}-check`)}:v1`]));
      await ok(ocitool(['verify', '--diff-ids', join(work, `lost-${lost}-check`)]));
    }
  });

  it('--chunk-size: Content-Range chunks of that size, surviving 503s on them', async () => {
    await withProxy(
      (n, method) => (method === 'PATCH' && n % 3 === 0 ? '503' : 'none'),
      async (p) => {
        const r = await ocitool(['push', '--chunk-size', String(8 * 1024 * 1024), `oci:${bigLayout}:v1`, `docker://${p.host}/faults/chunked:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c4') } });
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(bigDigest);
        const sent = patches(p).filter((l) => l.fault === 'none').map((l) => l.contentRange);
        const M = 8 * 1024 * 1024;
        expect(sent).toEqual([`0-${M - 1}`, `${M}-${2 * M - 1}`, expect.stringMatching(new RegExp(`^${2 * M}-\\d+$`))]);
        expect(patches(p).some((l) => l.fault === '503')).toBe(true);
      },
    );
    await ok(ocitool(['pull', `docker://${reg.host}/faults/chunked:v1`, `oci:${join(work, 'chunked-check')}:v1`]));
    await ok(ocitool(['verify', '--diff-ids', join(work, 'chunked-check')]));
  });

  it('recovers when an upload is cut off mid-PATCH (asks the registry where it got to, resumes or starts over)', async () => {
    let cut = false;
    await withProxy(
      (_n, method) => {
        if (method === 'PATCH' && !cut) {
          cut = true;
          return 'drop-request';
        }
        return 'none';
      },
      async (p) => {
        const r = await ocitool(['push', `oci:${bigLayout}:v1`, `docker://${p.host}/faults/cut:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c5') } });
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(bigDigest);
        // After the cut: a status query of the upload (GET on its location) came before anything else.
        const i = p.log.findIndex((l) => l.fault === 'drop-request');
        expect(p.log.slice(i + 1).some((l) => l.method === 'GET' && l.path.includes('/blobs/uploads/'))).toBe(true);
        // distribution 2.8 cancels an upload whose size no longer matches its state token, so here the
        // blob starts over with a new upload (resuming from the reported Range is tested against a
        // server that keeps partial chunks, in registry-resume.test.ts).
        expect(p.log.slice(i + 1).filter((l) => l.method === 'POST').length).toBe(1);
        expect(r.stderr).toMatch(/retrying sha256:.*lost the upload/);
      },
    );
    await ok(ocitool(['pull', `docker://${reg.host}/faults/cut:v1`, `oci:${join(work, 'cut-check')}:v1`]));
    await ok(ocitool(['verify', '--diff-ids', join(work, 'cut-check')]));
  });
});

describe('bearer tokens during long transfers', () => {
  it('a token that runs out is renewed before the next request, and a 401 mid-pull gets a fresh token', async () => {
    const { randomBytes } = await import('node:crypto');
    const { writeFile, mkdir } = await import('node:fs/promises');
    const tokenReg = await startRegistry({ auth: 'token', tokenExpiresIn: 1 });
    try {
      const creds = `${tokenReg.username}:${tokenReg.password}`;
      const src = join(work, 'token-src');
      await mkdir(src, { recursive: true });
      // Two layers of 5 MB: through the throttled proxy (about 2 MB/s) the pull outlives a 1 s token.
      await writeFile(join(src, 'one.bin'), randomBytes(5_000_000));
      await mkdir(join(src, 'two'));
      await writeFile(join(src, 'two', 'two.bin'), randomBytes(5_000_000));
      const tl = join(work, 'token-layout');
      await ok(ocitool(['build', '--tag', `oci:${tl}:v1`, '--add', `${join(src, 'one.bin')}:/one.bin`, '--add', `${join(src, 'two')}:/two`, '--compression', 'none']));
      const d = lastLine(await ok(ocitool(['push', '--creds', creds, `oci:${tl}:v1`, `docker://${tokenReg.host}/tok/img:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c6') } })));
      const challenge = (await fetch(`${tokenReg.url}/v2/`)).headers.get('www-authenticate')!;
      let blobGets = 0;
      await withProxyTo(
        tokenReg.host,
        (_n, method, path) => {
          if (method !== 'GET' || !path.includes('/blobs/sha256:')) return 'none';
          blobGets++;
          return blobGets === 2 ? { unauthorized: challenge } : 'slow';
        },
        async (p) => {
          const before = tokenReg.tokenServer!.requests.filter((r) => r.status === 200).length;
          const out = join(work, 'token-pull');
          const r = await ocitool(['pull', '--concurrency', '1', '--creds', creds, `docker://${p.host}/tok/img:v1`, `oci:${out}:v1`]);
          if (r.code !== 0) throw new Error(r.stderr);
          expect(lastLine(r.stdout)).toBe(d);
          // First token, one after the injected 401, and renewals as 1-second tokens ran out.
          const issued = tokenReg.tokenServer!.requests.filter((x) => x.status === 200).length - before;
          expect(issued).toBeGreaterThanOrEqual(3);
          await ok(ocitool(['verify', '--diff-ids', out]));
        },
      );
    } finally {
      await tokenReg.stop();
    }
  });
});

describe('redirects to a storage host', () => {
  it('blob GETs redirected to another origin are followed without the Authorization header', async () => {
    const { createServer, request } = await import('node:http');
    const authReg = await startRegistry({ auth: 'htpasswd' });
    const basic = `Basic ${Buffer.from(`${authReg.username}:${authReg.password}`).toString('base64')}`;
    const seen: (string | undefined)[] = [];
    // The "storage host": records what it was sent, then serves the blob from the registry itself.
    const storage = createServer((req, res) => {
      seen.push(req.headers.authorization);
      const [host, port] = authReg.host.split(':');
      request({ host, port: Number(port), path: req.url, headers: { authorization: basic } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      }).end();
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const storageUrl = `http://127.0.0.1:${(storage.address() as { port: number }).port}`;
    try {
      const creds = `${authReg.username}:${authReg.password}`;
      await ok(ocitool(['push', '--creds', creds, `oci:${layout}:v1`, `docker://${authReg.host}/redir/img:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c2') } }));
      const p = await startFaultProxy(authReg.host, (_n, method, path) => (method === 'GET' && path.includes('/blobs/sha256:') ? { redirect: storageUrl } : 'none'));
      try {
        const out = join(work, 'redirected');
        const r = await ocitool(['pull', '--creds', creds, `docker://${p.host}/redir/img:v1`, `oci:${out}:v1`]);
        if (r.code !== 0) throw new Error(r.stderr);
        expect(lastLine(r.stdout)).toBe(digest);
        expect(seen.length).toBe(3);
        expect(seen.every((a) => a === undefined)).toBe(true);
        // The registry itself did get credentials (through the proxy, same origin).
        expect(p.log.some((l) => l.path.includes('/manifests/'))).toBe(true);
        await ok(ocitool(['verify', '--diff-ids', out]));
      } finally {
        await p.stop();
      }
    } finally {
      storage.closeAllConnections();
      await new Promise<void>((resolve) => storage.close(() => resolve()));
      await authReg.stop();
    }
  });
});

describe('an interrupted pull', () => {
  it('kill -9 mid-pull leaves no torn blob visible, and a re-run completes', async () => {
    const { randomBytes } = await import('node:crypto');
    const { writeFile, mkdir } = await import('node:fs/promises');
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('./helpers/cli.js');
    const big = join(work, 'big');
    await mkdir(big, { recursive: true });
    await writeFile(join(big, 'random.bin'), randomBytes(12 * 1024 * 1024));
    const bigLayout = join(work, 'big-layout');
    const d = lastLine(await ok(ocitool(['build', '--tag', `oci:${bigLayout}:v1`, '--add', big, '--compression', 'none'])));
    await ok(ocitool(['push', `oci:${bigLayout}:v1`, `docker://${reg.host}/faults/big:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'c3') } }));
    const out = join(work, 'killed');
    await withProxy(
      (_n, method, path) => (method === 'GET' && path.includes('/blobs/sha256:') ? 'slow' : 'none'),
      async (p) => {
        const child = spawn(process.execPath, [BIN, 'pull', `docker://${p.host}/faults/big:v1`, `oci:${out}:v1`], { stdio: 'ignore' });
        // Wait until the big layer is partly written (over 1 MB in its temp file), then kill without warning.
        const { stat } = await import('node:fs/promises');
        const deadline = Date.now() + 20_000;
        for (;;) {
          const dir = join(out, '.ocitool', 'tmp');
          const names = await readdir(dir).catch(() => [] as string[]);
          const sizes = await Promise.all(names.filter((n) => n.startsWith('blob-')).map((n) => stat(join(dir, n)).then((s) => s.size, () => 0)));
          if (sizes.some((n) => n > 1_000_000) || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        child.kill('SIGKILL');
        await new Promise((r) => child.on('close', r));
      },
    );
    // Whatever was stored is whole; the big layer is not there under its name.
    const l = await OciLayout.open(out);
    for (const f of await l.listBlobFiles()) expect(f.digest).toBeDefined();
    const { verifyLayout } = await import('../src/layout/verify.js');
    expect((await verifyLayout(l)).problems).toEqual([]);
    expect(await l.tags()).toEqual([]);
    const torn = (await readdir(join(out, '.ocitool', 'tmp'))).length;
    expect(torn).toBeGreaterThan(0); // the torn temp file, invisible
    // A re-run completes, and gc clears the dead process's temp file.
    expect(lastLine(await ok(ocitool(['pull', `docker://${reg.host}/faults/big:v1`, `oci:${out}:v1`])))).toBe(d);
    await ok(ocitool(['verify', '--diff-ids', out]));
    expect(await ok(ocitool(['gc', out]))).toMatch(new RegExp(`and ${torn} temp files`));
  });
});
