/**
 * The test registry helpers, proven with skopeo in each auth mode: every later registry test relies
 * on them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, skopeoRegistryFlags, type AuthMode, type TestRegistry } from './helpers/registry.js';
import { skopeo, umoci } from './helpers/tools.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-reghelpers-'));
  src = join(work, 'src');
  const r1 = await umoci(['init', '--layout', src]);
  const r2 = await umoci(['new', '--image', `${src}:t1`]);
  expect(r1.code + r2.code).toBe(0);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function withRegistry(auth: AuthMode): () => TestRegistry {
  let reg: TestRegistry | undefined;
  beforeAll(async () => {
    reg = await startRegistry({ auth });
  });
  afterAll(async () => {
    await reg?.stop();
  });
  return () => reg!;
}

async function push(reg: TestRegistry, repo: string, creds?: string) {
  return skopeo(['copy', ...skopeoRegistryFlags(reg, 'dest', creds), `oci:${src}:t1`, `docker://${reg.host}/${repo}:t1`]);
}

describe.each(['none', 'htpasswd', 'token'] as AuthMode[])('registry with auth=%s', (auth) => {
  const reg = withRegistry(auth);

  it('skopeo pushes through it and reads the manifest back', async () => {
    const r = await push(reg(), 'smoke/img');
    if (r.code !== 0) throw new Error(`skopeo: ${r.stderr}\nregistry: ${reg().log()}`);
    const raw = await skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg(), 'plain'), `docker://${reg().host}/smoke/img:t1`]);
    expect(raw.code).toBe(0);
    expect(JSON.parse(raw.stdout).schemaVersion).toBe(2);
  });

  if (auth !== 'none') {
    it('refuses a wrong password and no credentials', async () => {
      const wrong = await push(reg(), 'smoke/denied', 'ocitool:wrong');
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/unauthorized|authentication required|401/i);
      const none = await skopeo(['copy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${src}:t1`, `docker://${reg().host}/smoke/denied:t1`]);
      expect(none.code).not.toBe(0);
    });
  }
});

describe('token server', () => {
  const reg = withRegistry('token');

  it('grants the scopes an authenticated client asks for, and the registry checks signatures', async () => {
    expect((await push(reg(), 'smoke/img')).code).toBe(0);
    const ts = reg().tokenServer!;
    const pushReq = ts.requests.find((r) => r.user === 'ocitool' && r.scopes.some((s) => s.startsWith('repository:smoke/img:') && s.includes('push')));
    expect(pushReq?.granted).toEqual([{ type: 'repository', name: 'smoke/img', actions: expect.arrayContaining(['pull', 'push']) }]);
    const access = [{ type: 'repository', name: 'smoke/img', actions: ['pull'] }];
    const url = `${reg().url}/v2/smoke/img/manifests/t1`;
    const accept = 'application/vnd.oci.image.manifest.v1+json';
    expect((await fetch(url, { headers: { authorization: `Bearer ${ts.sign('ocitool', access)}`, accept } })).status).toBe(200);
    // Same claims and certificate, signed by another key: refused.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect((await fetch(url, { headers: { authorization: `Bearer ${ts.sign('ocitool', access, privateKey)}`, accept } })).status).toBe(401);
    // A token without access: refused.
    expect((await fetch(url, { headers: { authorization: `Bearer ${ts.sign('', [])}`, accept } })).status).toBe(401);
  });

  it('answers the OAuth2 password and refresh-token flows', async () => {
    const ts = reg().tokenServer!;
    const form = (f: Record<string, string>) => fetch(ts.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() });
    const scope = 'repository:smoke/img:pull';
    const pw = await form({ grant_type: 'password', username: 'ocitool', password: 'ocitool-pass', access_type: 'offline', service: 'x', scope });
    expect(pw.status).toBe(200);
    const body = (await pw.json()) as { access_token: string; refresh_token: string; scope: string };
    expect(body.scope).toBe(scope);
    const rt = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'x', scope });
    expect(rt.status).toBe(200);
    expect((await form({ grant_type: 'password', username: 'ocitool', password: 'nope', scope })).status).toBe(401);
  });
});
