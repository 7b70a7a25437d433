/**
 * login / logout against the real registry (htpasswd and bearer tokens), with skopeo as the
 * independent reader of what login stored; catalog and digest.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { ocitool, lastLine } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { TEST_PASSWORD, TEST_USER, startRegistry, type TestRegistry } from './helpers/registry.js';
import { skopeo } from './helpers/tools.js';

let work: string;
let layoutDir: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-login-'));
  layoutDir = join(work, 'src');
  await writeTestImage(await OciLayout.init(layoutDir), { tag: 'v1' });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A home of its own: no docker or containers config but what the test writes. */
async function freshHome(name: string): Promise<{ home: string; env: NodeJS.ProcessEnv; config: string }> {
  const home = join(work, name);
  await mkdir(home, { recursive: true });
  const env = { HOME: home, DOCKER_CONFIG: undefined, REGISTRY_AUTH_FILE: undefined, XDG_RUNTIME_DIR: undefined };
  return { home, env, config: join(home, '.docker', 'config.json') };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

for (const auth of ['htpasswd', 'token'] as const) {
  describe(`login to a registry with ${auth} auth`, () => {
    let reg: TestRegistry;
    beforeAll(async () => {
      reg = await startRegistry({ auth });
    }, 30_000);
    afterAll(async () => {
      await reg?.stop();
    });

    it('a wrong password: exit 1, one line naming the host and user, never the password; nothing written', async () => {
      const { env, config, home } = await freshHome(`wrong-${auth}`);
      const r = await ocitool(['login', '-u', TEST_USER, '--password-stdin', reg.host], { env, input: 'not-the-password\n' });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(reg.host);
      expect(lines[0]).toContain(TEST_USER);
      expect(r.stderr).not.toContain('not-the-password');
      expect(existsSync(config)).toBe(false);
      expect(existsSync(join(home, '.docker'))).toBe(false);
    });

    it('stores verified credentials (mode 0600) that skopeo uses; push works with no --creds; logout removes them', async () => {
      const { env, config } = await freshHome(`ok-${auth}`);
      // Another registry's entry and unknown keys survive.
      await mkdir(join(config, '..'), { recursive: true });
      await writeFile(config, JSON.stringify({ auths: { 'other.test': { auth: b64('o:p') } }, psFormat: 'table' }));
      const r = await ocitool(['login', '-u', TEST_USER, '--password-stdin', reg.host], { env, input: `${TEST_PASSWORD}\n` });
      expect(r.stderr).toContain('login succeeded');
      expect(r.code).toBe(0);
      const doc = JSON.parse(await readFile(config, 'utf8')) as { auths: Record<string, { auth: string }>; psFormat: string };
      expect(doc.auths[reg.host]).toEqual({ auth: b64(`${TEST_USER}:${TEST_PASSWORD}`) });
      expect(doc.auths['other.test']).toEqual({ auth: b64('o:p') });
      expect(doc.psFormat).toBe('table');
      expect((await stat(config)).mode & 0o777).toBe(0o600);

      const push = await ocitool(['copy', '-q', `oci:${layoutDir}:v1`, `docker://${reg.host}/login/${auth}:v1`], { env });
      expect(push.stderr).toBe('');
      expect(push.code).toBe(0);
      // skopeo reads ~/.docker/config.json when it has no auth.json of its own.
      const seen = await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/login/${auth}:v1`], { env: { ...process.env, ...env } as NodeJS.ProcessEnv });
      expect(seen.code, seen.stderr).toBe(0);
      expect((JSON.parse(seen.stdout) as { Digest: string }).Digest).toBe(lastLine(push.stdout));

      const out = await ocitool(['logout', reg.host], { env });
      expect(out.code).toBe(0);
      expect(out.stderr).toContain(`removed the credentials for ${reg.host}`);
      const after = JSON.parse(await readFile(config, 'utf8')) as { auths: Record<string, unknown> };
      expect(after.auths[reg.host]).toBeUndefined();
      expect(after.auths['other.test']).toBeDefined();
      const denied = await ocitool(['inspect', `docker://${reg.host}/login/${auth}:v1`], { env });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain(`ocitool login ${reg.host}`);
      const again = await ocitool(['logout', reg.host], { env });
      expect(again.code).toBe(0);
      expect(again.stderr).toContain(`not logged in to ${reg.host}`);
    }, 60_000);
  });
}

describe('login with a credential helper', () => {
  let reg: TestRegistry;
  let bin: string;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd' });
    bin = join(work, 'bin');
    await mkdir(bin, { recursive: true });
    // A real helper program, as docker runs them: a store kept in a file beside it.
    const store = join(work, 'helper-store');
    await writeFile(
      join(bin, 'docker-credential-filestore'),
      `#!/bin/sh
set -e
case "$1" in
  store) cat > "${store}" ;;
  get) read server || true; if [ -f "${store}" ]; then cat "${store}"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server || true; if [ -f "${store}" ]; then rm "${store}"; echo erased; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
`,
    );
    await chmod(join(bin, 'docker-credential-filestore'), 0o755);
  }, 30_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it('credHelpers: the helper stores them (nothing in auths), ocitool reads them back, logout erases', async () => {
    const { env, config } = await freshHome('helper');
    await mkdir(join(config, '..'), { recursive: true });
    await writeFile(config, JSON.stringify({ credHelpers: { [reg.host]: 'filestore' } }));
    const e = { ...env, PATH: `${bin}:${process.env.PATH ?? ''}` };
    const r = await ocitool(['login', '-u', TEST_USER, '--password-stdin', reg.host], { env: e, input: TEST_PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('docker-credential-filestore');
    expect(JSON.parse(await readFile(join(work, 'helper-store'), 'utf8'))).toEqual({ ServerURL: reg.host, Username: TEST_USER, Secret: TEST_PASSWORD });
    expect(JSON.parse(await readFile(config, 'utf8'))).toEqual({ credHelpers: { [reg.host]: 'filestore' } });
    const push = await ocitool(['copy', '-q', `oci:${layoutDir}:v1`, `docker://${reg.host}/helped/img:v1`], { env: e });
    expect(push.code, push.stderr).toBe(0);
    expect((await ocitool(['logout', reg.host], { env: e })).code).toBe(0);
    expect(existsSync(join(work, 'helper-store'))).toBe(false);
  }, 60_000);

  it('--authfile writes that file, through a symlink to it; a malformed config is named and left as it was', async () => {
    const { env } = await freshHome('authfile');
    const real = join(work, 'real-auth.json');
    await writeFile(real, '{}');
    const link = join(work, 'auth-link.json');
    await symlink(real, link);
    const r = await ocitool(['login', '-u', TEST_USER, '--password-stdin', '--authfile', link, reg.host], { env, input: TEST_PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(await readFile(real, 'utf8'))).toMatchObject({ auths: { [reg.host]: { auth: b64(`${TEST_USER}:${TEST_PASSWORD}`) } } });
    const broken = join(work, 'broken.json');
    await writeFile(broken, '{"auths": {"x": {"auth": "c2VjcmV0"');
    const bad = await ocitool(['login', '-u', TEST_USER, '--password-stdin', '--authfile', broken, reg.host], { env, input: TEST_PASSWORD });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(new RegExp(`^ocitool: ${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: malformed JSON at line 1, column \\d+ .*nothing written$`));
    expect(await readFile(broken, 'utf8')).toBe('{"auths": {"x": {"auth": "c2VjcmV0"');
  }, 60_000);

  it('usage errors exit 2 before any request: no user, no password, both passwords, a host that is no host, credentials in the host', async () => {
    const { env } = await freshHome('usage');
    for (const args of [
      ['login', reg.host],
      ['login', '-u', 'x', reg.host],
      ['login', '-u', 'x', '-p', 'y', '--password-stdin', reg.host],
      ['login', '-u', 'x', '-p', 'y', 'not a host'],
      ['login', '-u', 'x', '-p', 'y', 'user:secret@localhost:5000'],
      // A password that starts with a dash is the password, never parsed into flags that a message names.
      ['login', '-u', 'x', '-p', '-secretpw', 'not a host'],
    ]) {
      const r = await ocitool(args, { env, input: '' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toContain('secret');
    }
  });
});

describe('catalog and digest', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
    for (const repo of ['a/one', 'b/two', 'c/three']) {
      const r = await ocitool(['copy', '-q', `oci:${layoutDir}:v1`, `docker://${reg.host}/${repo}:v1`]);
      expect(r.code, r.stderr).toBe(0);
    }
  }, 60_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it('catalog lists every repository across pages; --json gives an object', async () => {
    const r = await ocitool(['catalog', reg.host]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['a/one', 'b/two', 'c/three']);
    const j = await ocitool(['catalog', '--json', reg.host]);
    const lines = j.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.event === 'repository').map((l) => l.repository).sort()).toEqual(['a/one', 'b/two', 'c/three']);
    expect(lines.at(-1)).toMatchObject({ event: 'done', command: 'catalog', host: reg.host, count: 3 });
    const two = await ocitool(['catalog', '--max', '2', reg.host]);
    expect(two.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('digest prints the manifest digest and nothing else, the same as skopeo sees, from a registry and a layout', async () => {
    const seen = JSON.parse((await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/a/one:v1`])).stdout) as { Digest: string };
    const r = await ocitool(['digest', `docker://${reg.host}/a/one:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${seen.Digest}\n`);
    const l = await ocitool(['digest', `oci:${layoutDir}:v1`]);
    expect(l.stdout).toBe(`${seen.Digest}\n`);
    const missing = await ocitool(['digest', `docker://${reg.host}/a/one:nope`]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain('nope');
  });
});
