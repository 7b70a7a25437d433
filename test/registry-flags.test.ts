/**
 * Registry flags in skopeo's and crane's spellings (--tls-verify=false, --src-/--dest-tls-verify=false,
 * --authfile FILE, -a/--all), and a registry that speaks plain HTTP reached without --insecure: one
 * line after one attempt, naming the cure.
 *
 * The registry is the real docker-registry on 127.0.0.1, which speaks plain HTTP. ocitool lets loopback
 * hosts (localhost, *.localhost, 127.0.0.0/8, ::1) use plain HTTP without --insecure, as docker does, so
 * the tests reach the same registry by a name that resolves to 127.0.0.1 but is no loopback name by
 * that rule: this machine's host name when /etc/hosts maps it to 127.x, else 0.0.0.0 (which Linux
 * connects to this host). The check below fails loudly if the chosen name is treated as loopback.
 */
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { isLoopbackHost } from '../src/registry/network.js';
import { MediaType } from '../src/spec/media-types.js';
import { jsonEvents, lastLine, ocitool } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { ok } from './helpers/tools.js';

let work: string;
let src: string;
let reg: TestRegistry;
let authReg: TestRegistry;
/** The plain-HTTP registry under a name ocitool does not treat as loopback: `NAME:PORT`. */
let remote: string;
let env: NodeJS.ProcessEnv;

async function nonLoopbackName(): Promise<string> {
  const own = hostname();
  const address = await lookup(own, { family: 4 }).then((a) => a.address, () => '');
  return address.startsWith('127.') ? own : '0.0.0.0';
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-regflags-'));
  src = join(work, 'src');
  const layout = await OciLayout.init(src);
  await writeTestImage(layout, { tag: 'v1' });
  await writeTestImage(layout, { tag: 'amd', seed: 'amd' });
  await writeTestImage(layout, { tag: 'arm', seed: 'arm', platform: { os: 'linux', architecture: 'arm64' } });
  await ok(ocitool(['index', 'create', '--tag', `oci:${src}:multi`, `oci:${src}:amd`, `oci:${src}:arm`]));
  [reg, authReg] = await Promise.all([startRegistry(), startRegistry({ auth: 'htpasswd' })]);
  const name = await nonLoopbackName();
  remote = `${name}:${reg.host.split(':')[1]}`;
  // No credentials or proxies from the machine running the tests.
  const empty = join(work, 'home');
  await mkdir(empty);
  env = { HOME: empty, DOCKER_CONFIG: empty, REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '', HTTPS_PROXY: '', HTTP_PROXY: '', https_proxy: '', http_proxy: '', NO_PROXY: '', no_proxy: '' };
}, 60_000);
afterAll(async () => {
  await Promise.all([reg?.stop(), authReg?.stop()]);
  await rm(work, { recursive: true, force: true });
});

const lines = (stderr: string): string[] => stderr.trim().split('\n');

describe('a registry that speaks plain HTTP, reached without --insecure', () => {
  it('the chosen name is not loopback by ocitool’s rule (else this test proves nothing)', () => {
    expect(isLoopbackHost(remote.replace(/:\d+$/, ''))).toBe(false);
  });

  it('fails after one attempt, in one line: plain HTTP, use --insecure or --tls-verify=false', async () => {
    const t0 = Date.now();
    const r = await ocitool(['push', `oci:${src}:v1`, `docker://${remote}/plain/app:v1`], { env });
    const elapsed = Date.now() - t0;
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([`ocitool: ${remote}: the registry speaks plain HTTP, not HTTPS: use --insecure (or --tls-verify=false) to allow it`]);
    // Before: four attempts with backoff (about 4 s), then OpenSSL's two-line message.
    expect(elapsed).toBeLessThan(2_500);
  });

  it('works with --tls-verify=false (skopeo) as with --insecure', async () => {
    const pushed = lastLine(await ok(ocitool(['push', '--tls-verify=false', `oci:${src}:v1`, `docker://${remote}/plain/app:v1`], { env })));
    for (const flags of [['--tls-verify', 'false'], ['--insecure']]) {
      const raw = await ok(ocitool(['inspect', '--raw', ...flags, `docker://${remote}/plain/app:v1`], { env }));
      expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`, flags.join(' ')).toBe(pushed);
    }
  });

  it('copy --src-tls-verify=false and --dest-tls-verify=false relax one side only', async () => {
    const out = join(work, 'from-plain');
    // The destination's flag does not relax the source.
    const wrong = await ocitool(['copy', '--dest-tls-verify=false', `docker://${remote}/plain/app:v1`, `oci:${out}:v1`], { env });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('speaks plain HTTP');
    await ok(ocitool(['copy', '--src-tls-verify=false', `docker://${remote}/plain/app:v1`, `oci:${out}:v1`], { env }));
    await ok(ocitool(['copy', '--dest-tls-verify=false', `oci:${out}:v1`, `docker://${remote}/plain/copied:v1`], { env }));
    const back = await ocitool(['copy', '--src-tls-verify=false', `oci:${out}:v1`, `docker://${remote}/plain/copied:v2`], { env });
    expect(back.code).toBe(1);
    expect(back.stderr).toContain('speaks plain HTTP');
  });
});

describe('--authfile FILE', () => {
  it('is the credentials file read (as skopeo’s); without it the registry refuses; a missing one is exit 2', async () => {
    const dst = `docker://${authReg.host}/auth/app:v1`;
    const refused = await ocitool(['push', `oci:${src}:v1`, dst], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/401|credentials/);
    const file = join(work, 'auth.json');
    await writeFile(file, JSON.stringify({ auths: { [authReg.host]: { auth: Buffer.from(`${authReg.username}:${authReg.password}`).toString('base64') } } }));
    expect(lastLine(await ok(ocitool(['push', '--authfile', file, `oci:${src}:v1`, dst], { env })))).toMatch(/^sha256:/);
    const missing = await ocitool(['push', '--authfile', join(work, 'nope.json'), `oci:${src}:v1`, dst], { env });
    expect(missing.code).toBe(2);
    expect(lines(missing.stderr)).toEqual([`ocitool: --authfile ${join(work, 'nope.json')}: no such file`]);
  });
});

describe('-a / --all', () => {
  it('are --all-platforms: pull copies the whole index instead of one platform', async () => {
    await ok(ocitool(['push', `oci:${src}:multi`, `docker://${reg.host}/multi/app:v1`], { env }));
    const rootType = async (dir: string): Promise<string> => jsonEvents<{ mediaType: string }>(await ok(ocitool(['ls', '--json', dir])), 'image')[0]!.mediaType;
    for (const [flags, type] of [[['--platform', 'linux/arm64'], MediaType.OciManifest], [['-a'], MediaType.OciIndex], [['--all'], MediaType.OciIndex]] as const) {
      const out = join(work, `pulled${flags[0]}`);
      await ok(ocitool(['pull', ...flags, `docker://${reg.host}/multi/app:v1`, `oci:${out}:v1`], { env }));
      expect(await rootType(out), flags.join(' ')).toBe(type);
    }
  });
});
