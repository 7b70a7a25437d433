/**
 * TLS and proxies: a registry serving HTTPS with a self-signed certificate is refused unless its CA is
 * trusted (NODE_EXTRA_CA_CERTS) or --insecure is given; HTTPS_PROXY carries requests through a CONNECT
 * proxy, except to loopback hosts, which are never proxied.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLine, ocitool } from './helpers/cli.js';
import { startConnectProxy, type ConnectProxy } from './helpers/connect-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { makeTree } from './helpers/trees.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let layout: string;
let digest: string;
let reg: TestRegistry;
let proxy: ConnectProxy;
const port = (): string => reg.host.split(':')[1]!;
// No proxy settings from the machine running the tests leak in.
const clean = { HTTPS_PROXY: '', HTTP_PROXY: '', NO_PROXY: '', https_proxy: '', http_proxy: '', no_proxy: '', NODE_EXTRA_CA_CERTS: '' };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-tls-'));
  await makeTree(join(work, 'src'), { 'hello.txt': 'hello over TLS\n' });
  layout = join(work, 'layout');
  digest = lastLine(await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', join(work, 'src')])));
  reg = await startRegistry({ tls: { dnsNames: ['registry.test'] } });
  proxy = await startConnectProxy();
});
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

const env = (extra: Record<string, string> = {}) => ({ env: { ...clean, OCITOOL_CACHE_DIR: join(work, 'cache'), ...extra } });

describe('a registry with a self-signed certificate', () => {
  it('is refused without --insecure: one line naming the registry and the certificate problem, exit 1', async () => {
    const r = await ocitool(['push', `oci:${layout}:v1`, `docker://${reg.host}/tls/img:v1`], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^ocitool: ${reg.host.replace(/\./g, '\\.')}: TLS certificate not trusted \\([A-Z_]+\\); .*--insecure\\n$`));
  });

  it('is used over unverified TLS with --insecure (not plain HTTP: skopeo finds the image over HTTPS)', async () => {
    const r = await ocitool(['push', '--insecure', `oci:${layout}:v1`, `docker://${reg.host}/tls/insecure:v1`], env());
    if (r.code !== 0) throw new Error(r.stderr);
    expect(lastLine(r.stdout)).toBe(digest);
    const raw = await ok(skopeo(['inspect', '--raw', '--cert-dir', join(work, 'none'), '--tls-verify=false', `docker://${reg.host}/tls/insecure:v1`]));
    expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(digest);
    await ok(ocitool(['inspect', '--insecure', `docker://${reg.host}/tls/insecure:v1`], env()));
  });

  it('is verified and used when its CA is trusted (NODE_EXTRA_CA_CERTS)', async () => {
    const trusted = env({ NODE_EXTRA_CA_CERTS: reg.caFile! });
    expect(lastLine(await ok(ocitool(['push', `oci:${layout}:v1`, `docker://${reg.host}/tls/trusted:v1`], trusted)))).toBe(digest);
    const back = join(work, 'back');
    expect(lastLine(await ok(ocitool(['pull', `docker://${reg.host}/tls/trusted:v1`, `oci:${back}:v1`], trusted)))).toBe(digest);
    await ok(ocitool(['verify', '--diff-ids', back]));
  });
});

describe('proxies from the environment', () => {
  it('HTTPS_PROXY tunnels registry traffic through the proxy (CONNECT), TLS verified end to end', async () => {
    const before = proxy.connects.length;
    const r = await ocitool(['push', `oci:${layout}:v1`, `docker://registry.test:${port()}/tls/proxied:v1`], env({ HTTPS_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: reg.caFile! }));
    if (r.code !== 0) throw new Error(r.stderr);
    expect(lastLine(r.stdout)).toBe(digest);
    const seen = proxy.connects.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`registry.test:${port()}`]));
    // Through the proxy, by name, the registry has the image.
    const back = join(work, 'back-proxied');
    await ok(ocitool(['pull', `docker://registry.test:${port()}/tls/proxied:v1`, `oci:${back}:v1`], env({ https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: reg.caFile! })));
    await ok(ocitool(['verify', back]));
  });

  it('loopback registries are never proxied', async () => {
    const before = proxy.connects.length;
    await ok(ocitool(['push', `oci:${layout}:v1`, `docker://${reg.host}/tls/direct:v1`], env({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: reg.caFile! })));
    expect(proxy.connects.length).toBe(before);
  });
});
