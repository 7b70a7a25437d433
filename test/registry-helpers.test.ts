/**
 * The test registry helpers, proven with skopeo in each auth mode: every later registry test relies
 * on them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, skopeoRegistryFlags, TEST_PASSWORD, TEST_USER, TOKEN_ISSUER, TOKEN_SERVICE, type AuthMode, type RegistryOptions, type TestRegistry } from './helpers/registry.js';
import { libtrustKeyId, type Access } from './helpers/token-server.js';
import { runTool, skopeo, umoci } from './helpers/tools.js';

const T = 60_000;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-reghelpers-'));
  src = join(work, 'src');
  const r1 = await umoci(['init', '--layout', src]);
  expect(r1.code, r1.stderr).toBe(0);
  const r2 = await umoci(['new', '--image', `${src}:t1`]);
  expect(r2.code, r2.stderr).toBe(0);
}, T);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** One registry for the enclosing describe, stopped in afterAll whatever happened. */
function withRegistry(opts: RegistryOptions): () => TestRegistry {
  let reg: TestRegistry | undefined;
  beforeAll(async () => {
    reg = await startRegistry(opts);
  }, T);
  afterAll(async () => {
    await reg?.stop();
  }, T);
  return () => {
    if (!reg) throw new Error('registry did not start');
    return reg;
  };
}

async function push(reg: TestRegistry, repo: string, creds?: string) {
  return skopeo(['copy', ...skopeoRegistryFlags(reg, 'dest', creds), `oci:${src}:t1`, `docker://${reg.host}/${repo}:t1`]);
}

/** GET a manifest with a bearer token (or none); returns the status. */
async function getManifest(reg: TestRegistry, repo: string, token?: string): Promise<number> {
  const r = await fetch(`${reg.url}/v2/${repo}/manifests/t1`, { headers: { accept: OCI_MANIFEST, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  await r.arrayBuffer();
  return r.status;
}

describe.each(['none', 'htpasswd', 'token'] as AuthMode[])('registry with auth=%s', (auth) => {
  const reg = withRegistry({ auth });

  it(
    'skopeo pushes through it and reads the manifest back',
    async () => {
      expect(reg().host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(reg().url).toBe(`http://${reg().host}`);
      const r = await push(reg(), 'smoke/img');
      if (r.code !== 0) throw new Error(`skopeo: ${r.stderr}\nregistry: ${reg().log()}`);
      const raw = await skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg(), 'plain'), `docker://${reg().host}/smoke/img:t1`]);
      expect(raw.code, raw.stderr).toBe(0);
      const manifest = JSON.parse(raw.stdout) as { schemaVersion: number; mediaType?: string; layers: unknown[] };
      expect(manifest.schemaVersion).toBe(2);
      expect(manifest.layers).toEqual([]);
      expect(existsSync(join(reg().dataDir, 'docker/registry/v2/repositories/smoke/img'))).toBe(true);
    },
    T,
  );

  if (auth === 'none') {
    it('needs no credentials', async () => {
      expect(reg().username).toBeUndefined();
      expect(await getManifest(reg(), 'smoke/img')).toBe(200);
    });
  } else {
    it(
      'refuses a wrong password and no credentials',
      async () => {
        expect([reg().username, reg().password]).toEqual([TEST_USER, TEST_PASSWORD]);
        const wrong = await push(reg(), 'smoke/denied', `${TEST_USER}:wrong`);
        expect(wrong.code).not.toBe(0);
        expect(wrong.stderr).toMatch(/unauthorized|authentication required|401/i);
        const none = await skopeo(['copy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${src}:t1`, `docker://${reg().host}/smoke/denied:t1`]);
        expect(none.code).not.toBe(0);
        const anonRead = await skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${reg().host}/smoke/img:t1`]);
        expect(anonRead.code).not.toBe(0);
        expect(anonRead.stderr).toMatch(/unauthorized|authentication required|401/i);
      },
      T,
    );
  }
});

describe('token server', () => {
  const reg = withRegistry({ auth: 'token' });
  const access: Access[] = [{ type: 'repository', name: 'smoke/img', actions: ['pull'] }];

  it(
    'grants an authenticated client the scopes it asks for; anonymous clients get nothing',
    async () => {
      const r = await push(reg(), 'smoke/img');
      expect(r.code, r.stderr).toBe(0);
      const ts = reg().tokenServer!;
      const pushReq = ts.requests.find((q) => q.authenticated && q.scopes.some((s) => s.startsWith('repository:smoke/img:') && s.includes('push')));
      expect(pushReq, JSON.stringify(ts.requests)).toBeDefined();
      expect(pushReq!.user).toBe(TEST_USER);
      expect(pushReq!.service).toBe(TOKEN_SERVICE);
      expect(pushReq!.granted).toEqual([{ type: 'repository', name: 'smoke/img', actions: expect.arrayContaining(['pull', 'push']) }]);
      expect(ts.requests.every((q) => q.status === 200)).toBe(true);

      const before = ts.requests.length;
      const anon = await skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${reg().host}/smoke/img:t1`]);
      expect(anon.code).not.toBe(0);
      const anonReqs = ts.requests.slice(before);
      expect(anonReqs.length).toBeGreaterThan(0);
      expect(anonReqs.every((q) => !q.authenticated && q.granted.length === 0)).toBe(true);

      const bad = await push(reg(), 'smoke/img', `${TEST_USER}:wrong`);
      expect(bad.code).not.toBe(0);
      expect(ts.requests.some((q) => q.status === 401 && !q.authenticated)).toBe(true);
    },
    T,
  );

  it(
    'the registry checks signature, issuer, audience, expiry and access',
    async () => {
      await push(reg(), 'smoke/img');
      const ts = reg().tokenServer!;
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access))).toBe(200);
      expect(await getManifest(reg(), 'smoke/img')).toBe(401);
      // Same claims and certificate, signed by another key.
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, privateKey))).toBe(401);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, { key: privateKey, keyHint: 'kid' }))).toBe(401);
      // Another key's ID.
      const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      expect(libtrustKeyId(other.publicKey)).not.toBe(ts.keyId);
      // No access, access to another repository, wrong issuer or audience, expired beyond the registry's 60 s leeway.
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, []))).toBe(401);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, [{ ...access[0]!, name: 'smoke/other' }]))).toBe(401);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, { claims: { iss: 'someone-else' } }))).toBe(401);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, { claims: { aud: 'another-service' } }))).toBe(401);
      const now = Math.floor(Date.now() / 1000);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, { claims: { exp: now - 120, nbf: now - 300, iat: now - 300 } }))).toBe(401);
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, access, { claims: { iss: TOKEN_ISSUER, aud: TOKEN_SERVICE } }))).toBe(200);
    },
    T,
  );

  it(
    'answers the OAuth2 password and refresh-token flows',
    async () => {
      const ts = reg().tokenServer!;
      const form = (f: Record<string, string>) => fetch(ts.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() });
      const scope = 'repository:smoke/img:pull';
      const pw = await form({ grant_type: 'password', username: TEST_USER, password: TEST_PASSWORD, access_type: 'offline', service: TOKEN_SERVICE, client_id: 'test', scope });
      expect(pw.status).toBe(200);
      const body = (await pw.json()) as { access_token: string; refresh_token: string; scope: string; expires_in: number };
      expect(body.scope).toBe(scope);
      expect(body.expires_in).toBe(300);
      expect(typeof body.refresh_token).toBe('string');
      expect(await getManifest(reg(), 'smoke/img', body.access_token)).toBe(200);
      const rt = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: TOKEN_SERVICE, client_id: 'test', scope });
      expect(rt.status).toBe(200);
      const refreshed = (await rt.json()) as { access_token: string; refresh_token?: string };
      expect(refreshed.refresh_token).toBeUndefined();
      expect(await getManifest(reg(), 'smoke/img', refreshed.access_token)).toBe(200);
      const noOffline = (await (await form({ grant_type: 'password', username: TEST_USER, password: TEST_PASSWORD, scope })).json()) as { refresh_token?: string };
      expect(noOffline.refresh_token).toBeUndefined();
      expect((await form({ grant_type: 'password', username: TEST_USER, password: 'nope', scope })).status).toBe(401);
      expect((await form({ grant_type: 'refresh_token', refresh_token: 'made-up', scope })).status).toBe(401);
      expect((await form({ grant_type: 'client_credentials', scope })).status).toBe(400);
    },
    T,
  );

  it(
    'GET /token: scopes, Basic auth, and the response fields',
    async () => {
      const ts = reg().tokenServer!;
      const q = new URLSearchParams([
        ['service', TOKEN_SERVICE],
        ['account', TEST_USER],
        ['scope', 'repository:a/b:pull,push'],
        ['scope', 'repository:c:pull'],
      ]);
      const basic = `Basic ${Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64')}`;
      const r = await fetch(`${ts.url}?${q}`, { headers: { authorization: basic } });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
      expect(body.access_token).toBe(body.token);
      expect(body.expires_in).toBe(300);
      expect(Number.isNaN(Date.parse(body.issued_at))).toBe(false);
      const [h, c] = body.token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>);
      expect(h).toMatchObject({ typ: 'JWT', alg: 'ES256' });
      expect(c).toMatchObject({ iss: TOKEN_ISSUER, aud: TOKEN_SERVICE, sub: TEST_USER });
      expect(c!.access).toEqual([
        { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
        { type: 'repository', name: 'c', actions: ['pull'] },
      ]);
      const last = ts.requests.at(-1)!;
      expect(last).toMatchObject({ method: 'GET', authenticated: true, user: TEST_USER, account: TEST_USER, scopes: ['repository:a/b:pull,push', 'repository:c:pull'] });
      const wrong = await fetch(`${ts.url}?${q}`, { headers: { authorization: `Basic ${Buffer.from(`${TEST_USER}:x`).toString('base64')}` } });
      expect(wrong.status).toBe(401);
      await wrong.arrayBuffer();
      // Mutable lifetime, for tests that need tokens to run out.
      ts.expiresIn = 2;
      try {
        const short = (await (await fetch(`${ts.url}?${q}`, { headers: { authorization: basic } })).json()) as { token: string; expires_in: number };
        expect(short.expires_in).toBe(2);
        const claims = JSON.parse(Buffer.from(short.token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
        expect(claims.exp - claims.iat).toBe(2);
      } finally {
        ts.expiresIn = 300;
      }
    },
    T,
  );
});

describe('token server with kid headers and anonymous pull', () => {
  const reg = withRegistry({ auth: 'token', tokenKeyHint: 'kid', allowAnonymousPull: true });

  it(
    'the registry finds the key by its libtrust ID; anonymous clients may pull but not push',
    async () => {
      const ts = reg().tokenServer!;
      expect(ts.keyId).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
      const r = await push(reg(), 'smoke/img');
      expect(r.code, `${r.stderr}\n${reg().log()}`).toBe(0);
      const token = ts.sign(TEST_USER, [{ type: 'repository', name: 'smoke/img', actions: ['pull'] }]);
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toEqual({ typ: 'JWT', alg: 'ES256', kid: ts.keyId });
      expect(await getManifest(reg(), 'smoke/img', token)).toBe(200);
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      expect(await getManifest(reg(), 'smoke/img', ts.sign(TEST_USER, [{ type: 'repository', name: 'smoke/img', actions: ['pull'] }], privateKey))).toBe(401);

      const anon = await skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${reg().host}/smoke/img:t1`]);
      expect(anon.code, anon.stderr).toBe(0);
      const anonPush = await skopeo(['copy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${src}:t1`, `docker://${reg().host}/smoke/anon:t1`]);
      expect(anonPush.code).not.toBe(0);
      const anonReqs = ts.requests.filter((q) => !q.authenticated && q.status === 200);
      expect(anonReqs.length).toBeGreaterThan(0);
      for (const q of anonReqs) for (const g of q.granted) expect(g.actions).toEqual(['pull']);
    },
    T,
  );
});

describe('startRegistry', () => {
  it(
    'schema1 compatibility starts; stop() is idempotent, kills the registry and removes its directory',
    async () => {
      const reg = await startRegistry({ schema1: true });
      let stopped = false;
      try {
        const dir = dirname(reg.dataDir);
        expect(existsSync(join(dir, 'config.yml'))).toBe(true);
        const v2 = await fetch(`${reg.url}/v2/`);
        expect(v2.status).toBe(200);
        await v2.arrayBuffer();
        await Promise.all([reg.stop(), reg.stop()]);
        stopped = true;
        await reg.stop();
        expect(existsSync(dir)).toBe(false);
        await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow();
      } finally {
        if (!stopped) await reg.stop();
      }
    },
    T,
  );

  it(
    'runTool times out and reports it',
    async () => {
      const r = await runTool('sleep', ['10'], { timeoutMs: 200 });
      expect(r.timedOut).toBe(true);
      expect(r.code).toBe(137);
      await expect(runTool('/nonexistent/tool', [])).rejects.toThrow(/ENOENT/);
    },
    T,
  );
});
