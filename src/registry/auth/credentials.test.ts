import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { credentialFiles, parseCreds, resolveCredentials } from './credentials.js';

let dir: string;
let home: string;
let bin: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-creds-'));
  home = join(dir, 'home');
  bin = join(dir, 'bin');
  await mkdir(join(home, '.docker'), { recursive: true });
  await mkdir(bin);
  // A real credential helper program, as docker runs them: server on stdin, JSON on stdout.
  await writeFile(
    join(bin, 'docker-credential-test'),
    `#!/bin/sh\nread server\nif [ "$server" = "helped.test" ]; then echo '{"ServerURL":"helped.test","Username":"hu","Secret":"hs"}'; exit 0; fi\nif [ "$server" = "token.test" ]; then echo '{"Username":"<token>","Secret":"refresh-me"}'; exit 0; fi\necho "credentials not found in native keychain"; exit 1\n`,
  );
  await chmod(join(bin, 'docker-credential-test'), 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const env = () => ({ PATH: `${bin}:${process.env.PATH ?? ''}` });

describe('resolveCredentials', () => {
  it('reads auths by host, with auth or username/password, and Docker Hub by its v1 key', async () => {
    await writeFile(
      join(home, '.docker', 'config.json'),
      JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') }, 'reg.test:5000': { username: 'u', password: 'p' }, 'https://other.test': { auth: b64('o:q') } } }),
    );
    expect(await resolveCredentials('docker.io', undefined, { home, env: env() })).toMatchObject({ username: 'hubuser', password: 'hub:pass' });
    expect(await resolveCredentials('reg.test:5000', undefined, { home, env: env() })).toMatchObject({ username: 'u', password: 'p' });
    expect(await resolveCredentials('other.test', undefined, { home, env: env() })).toMatchObject({ username: 'o', password: 'q' });
    expect(await resolveCredentials('nothing.test', undefined, { home, env: env() })).toBeUndefined();
  });

  it('explicit --creds wins; REGISTRY_AUTH_FILE comes before the docker config', async () => {
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'reg.test': { auth: b64('docker:x') } } }));
    await writeFile(join(dir, 'auth.json'), JSON.stringify({ auths: { 'reg.test': { auth: b64('podman:y') } } }));
    const e = { ...env(), REGISTRY_AUTH_FILE: join(dir, 'auth.json') };
    expect(await resolveCredentials('reg.test', undefined, { home, env: e })).toMatchObject({ username: 'podman' });
    expect(await resolveCredentials('reg.test', parseCreds('me:secret'), { home, env: e })).toMatchObject({ username: 'me', password: 'secret', source: '--creds' });
    expect(credentialFiles({ home, env: { DOCKER_CONFIG: '/cfg', XDG_RUNTIME_DIR: '/run/u' } })).toEqual(['/cfg/config.json', '/run/u/containers/auth.json', join(home, '.config/containers/auth.json')]);
  });

  it('runs credHelpers and credsStore programs; "<token>" means an identity token; not found is anonymous', async () => {
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ credHelpers: { 'helped.test': 'test', 'token.test': 'test' }, credsStore: 'test', auths: { 'plain.test': { identitytoken: 'idt' } } }));
    expect(await resolveCredentials('helped.test', undefined, { home, env: env() })).toMatchObject({ username: 'hu', password: 'hs', source: 'credential helper docker-credential-test' });
    expect(await resolveCredentials('token.test', undefined, { home, env: env() })).toMatchObject({ identityToken: 'refresh-me' });
    expect(await resolveCredentials('plain.test', undefined, { home, env: env() })).toMatchObject({ identityToken: 'idt' });
    expect(await resolveCredentials('stored.test', undefined, { home, env: env() })).toBeUndefined();
  });

  it('names the file or helper at fault', async () => {
    await writeFile(join(home, '.docker', 'config.json'), '{"auths": {');
    await expect(resolveCredentials('x.test', undefined, { home, env: env() })).rejects.toThrow(/config\.json: malformed JSON/);
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ credHelpers: { 'x.test': 'missing' } }));
    await expect(resolveCredentials('x.test', undefined, { home, env: env() })).rejects.toThrow(/docker-credential-missing: not found on PATH/);
    expect(() => parseCreds('nopassword')).toThrow(/USER:PASSWORD/);
  });
});
