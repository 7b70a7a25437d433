/**
 * First registry round trips (issue 4, in progress): ocitool copies to and from the real registry in
 * each auth mode, and skopeo reads back what ocitool pushed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLine, ocitool } from './helpers/cli.js';
import { startRegistry, skopeoRegistryFlags, type AuthMode, type TestRegistry } from './helpers/registry.js';
import { makeTree } from './helpers/trees.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let layout: string;
let digest: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-regcopy-'));
  await makeTree(join(work, 'src'), { 'app/main.sh': { file: 'echo hi\n', mode: 0o755 }, 'app/data.txt': 'x'.repeat(100_000) });
  layout = join(work, 'layout');
  digest = lastLine(await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', join(work, 'src'), '--cmd', '/app/main.sh'])));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.each(['none', 'htpasswd', 'token'] as AuthMode[])('copy through a registry with auth=%s', (auth) => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth });
  });
  afterAll(async () => {
    await reg?.stop();
  });
  const creds = (): string[] => (reg.username ? ['--dest-creds', `${reg.username}:${reg.password}`] : []);

  it('pushes what ocitool built; skopeo reads the same manifest digest; pulls it back verified', async () => {
    const pushed = await ocitool(['copy', ...creds(), `oci:${layout}:v1`, `docker://${reg.host}/app/one:v1`]);
    if (pushed.code !== 0) throw new Error(`${pushed.stderr}\n${reg.log()}`);
    expect(lastLine(pushed.stdout)).toBe(digest);
    const raw = await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/app/one:v1`]));
    const { createHash } = await import('node:crypto');
    expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(digest);
    const back = join(work, `back-${auth}`);
    const srcCreds = reg.username ? ['--src-creds', `${reg.username}:${reg.password}`] : [];
    expect(lastLine(await ok(ocitool(['copy', ...srcCreds, `docker://${reg.host}/app/one:v1`, `oci:${back}:v1`])))).toBe(digest);
    await ok(ocitool(['verify', '--diff-ids', back]));
    // Everything is there already: a second push copies nothing.
    const again = await ok(ocitool(['copy', ...creds(), `oci:${layout}:v1`, `docker://${reg.host}/app/one:v1`]));
    expect(lastLine(again)).toBe(digest);
  });

  if (auth !== 'none') {
    it('--username with --password-stdin, and --creds on a copy with one registry end', async () => {
      const viaStdin = await ocitool(['push', '--username', reg.username!, '--password-stdin', `oci:${layout}:v1`, `docker://${reg.host}/app/stdin:v1`], { input: `${reg.password}\n`, env: { HOME: work, DOCKER_CONFIG: join(work, 'no-docker-config') } });
      if (viaStdin.code !== 0) throw new Error(viaStdin.stderr);
      expect(lastLine(viaStdin.stdout)).toBe(digest);
      const wrongStdin = await ocitool(['pull', '--username', reg.username!, '--password-stdin', `docker://${reg.host}/app/stdin:v1`, `oci:${join(work, `stdin-${auth}`)}:v1`], { input: 'nope\n' });
      expect(wrongStdin.code).toBe(1);
      expect(wrongStdin.stderr).toMatch(/--password-stdin.*401|401.*--password-stdin/);
      // copy: --creds goes to the end that is a registry; with two registries it must be said which.
      expect(lastLine(await ok(ocitool(['copy', '--creds', `${reg.username}:${reg.password}`, `docker://${reg.host}/app/stdin:v1`, `oci:${join(work, `creds-${auth}`)}:v1`])))).toBe(digest);
      const both = await ocitool(['copy', '--creds', `${reg.username}:${reg.password}`, `docker://${reg.host}/app/stdin:v1`, `docker://${reg.host}/app/other:v1`]);
      expect(both.code).toBe(2);
      expect(both.stderr).toMatch(/--src-creds and --dest-creds/);
      expect((await ocitool(['push', '--username', 'x', `oci:${layout}:v1`, `docker://${reg.host}/app/x:v1`])).code).toBe(2);
    });

    it('wrong or missing credentials: one line naming the registry, exit 1', async () => {
      const wrong = await ocitool(['copy', '--dest-creds', 'ocitool:wrong', `oci:${layout}:v1`, `docker://${reg.host}/app/denied:v1`]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(new RegExp(`^ocitool: 127\\.0\\.0\\.1:\\d+: .*(401|refused).*\\n$`));
      const none = await ocitool(['copy', `oci:${layout}:v1`, `docker://${reg.host}/app/denied:v1`], { env: { HOME: work, DOCKER_CONFIG: join(work, 'no-docker-config') } });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/401/);
    });
  }
});

describe('refusals are told apart', () => {
  it('a token without push access: the missing scope is named; an unknown repository: 404', async () => {
    const reg = await startRegistry({ auth: 'token', allowAnonymousPull: true });
    try {
      const env = { HOME: work, DOCKER_CONFIG: join(work, 'no-docker-config'), OCITOOL_CACHE_DIR: join(work, 'refusal-cache') };
      const anon = await ocitool(['push', `oci:${layout}:v1`, `docker://${reg.host}/scoped/img:v1`], { env });
      expect(anon.code).toBe(1);
      expect(anon.stderr).toMatch(/^ocitool: 127\.0\.0\.1:\d+: .*scoped\/img.*lacks scope repository:scoped\/img:.*push.*insufficient_scope.*\n$/);
      // Anonymous pull is allowed: a missing image is a plain 404.
      const missing = await ocitool(['pull', `docker://${reg.host}/scoped/none:v1`, `oci:${join(work, 'none')}:v1`], { env });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/scoped\/none: not found \(404\)/);
    } finally {
      await reg.stop();
    }
  });
});

describe('mounts, tags, inspect, push/pull and build to a registry', () => {
  let reg: TestRegistry;
  const env = (): NodeJS.ProcessEnv => ({ OCITOOL_CACHE_DIR: join(work, 'cache') });
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('a second push to another repository of the same registry mounts the blobs instead of uploading', async () => {
    const creds = `${reg.username}:${reg.password}`;
    const first = await ocitool(['push', '--creds', creds, `oci:${layout}:v1`, `docker://${reg.host}/team/a:v1`], { env: env() });
    expect(first.stderr).toMatch(/3 copied, 0 mounted, 0 already there/);
    const second = await ocitool(['push', '--creds', creds, `oci:${layout}:v1`, `docker://${reg.host}/team/b:v1`], { env: env() });
    expect(second.code).toBe(0);
    expect(second.stderr).toMatch(/mounted sha256:[0-9a-f]{64} from team\/a/);
    expect(second.stderr).toMatch(/1 copied, 2 mounted, 0 already there/);
    expect(lastLine(second.stdout)).toBe(digest);
    // The token server was asked for pull access to the mount source.
    expect(reg.tokenServer!.requests.some((r) => r.scopes.includes('repository:team/a:pull') && r.scopes.includes('repository:team/b:pull,push'))).toBe(true);
    const raw = await ok(skopeo(['inspect', '--raw', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/team/b:v1`]));
    expect(JSON.parse(raw).layers).toHaveLength(1);
  });

  it('--json writes one event per line: blob start/progress/done, mount, manifest pushed, then done', async () => {
    const creds = `${reg.username}:${reg.password}`;
    const events = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as { event: string; digest: string; bytes?: number; from?: string; size: number });
    // A cache of its own: blobs the earlier tests pushed would be mounted from their repositories.
    const jsonEnv = { env: { OCITOOL_CACHE_DIR: join(work, 'json-cache') } };
    const first = events(await ok(ocitool(['push', '--json', '--creds', creds, `oci:${layout}:v1`, `docker://${reg.host}/json/a:v1`], jsonEnv)));
    const kinds = first.map((e) => e.event);
    expect(kinds.filter((k) => k === 'blob-start')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'blob-done')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'manifest-pushed')).toHaveLength(1);
    expect(kinds.at(-1)).toBe('done');
    expect(first.at(-1)!.digest).toBe(digest);
    for (const e of first.filter((x) => x.event === 'blob-done')) expect(e.bytes).toBe(e.size);
    // Every blob starts before it is done, and the manifest goes last of all pushes.
    expect(kinds.indexOf('manifest-pushed')).toBeGreaterThan(kinds.lastIndexOf('blob-done'));
    // Registry to registry on one host: the source repository is where blobs are mounted from.
    const copied = events(await ok(ocitool(['copy', '--json', '--src-creds', creds, '--dest-creds', creds, `docker://${reg.host}/json/a:v1`, `docker://${reg.host}/json/b:v1`], { env: { OCITOOL_CACHE_DIR: join(work, 'fresh-cache') } })));
    const mounts = copied.filter((e) => e.event === 'blob-mount');
    expect(mounts).toHaveLength(2);
    expect(mounts.every((m) => m.from === 'json/a')).toBe(true);
    expect(copied.some((e) => e.event === 'blob-start')).toBe(false);
    // And again: everything is there.
    const again = events(await ok(ocitool(['push', '--json', '--creds', creds, `oci:${layout}:v1`, `docker://${reg.host}/json/a:v1`], jsonEnv)));
    expect(again.map((e) => e.event)).toEqual(['manifest-skip', 'done']);
  });

  it('the library copy() reports progress and stops on an AbortSignal, leaving nothing half-written', async () => {
    const { copy } = await import('../src/transport/copy.js');
    const { parseCreds } = await import('../src/registry/auth/credentials.js');
    const { randomBytes } = await import('node:crypto');
    const { writeFile, mkdir, readdir } = await import('node:fs/promises');
    const { OciLayout } = await import('../src/layout/layout.js');
    const big = join(work, 'abort-src');
    await mkdir(big, { recursive: true });
    await writeFile(join(big, 'random.bin'), randomBytes(20 * 1024 * 1024));
    const bigLayout = join(work, 'abort-layout');
    await ok(ocitool(['build', '--tag', `oci:${bigLayout}:v1`, '--add', big, '--compression', 'none']));
    const cred = parseCreds(`${reg.username}:${reg.password}`);
    const seen: string[] = [];
    const pushed = await copy(`oci:${bigLayout}:v1`, `docker://${reg.host}/lib/big:v1`, { dstCredential: cred, onProgress: (e) => seen.push(e.type) });
    expect(seen.filter((t) => t === 'blob-done')).toHaveLength(2);
    expect(seen.at(-1)).toBe('manifest-pushed');
    // Pull it, through a throttling proxy, with a signal that fires once the layer is under way.
    const { startFaultProxy } = await import('./helpers/fault-proxy.js');
    const slow = await startFaultProxy(reg.host, (_n, method, path) => (method === 'GET' && path.includes('/blobs/') ? 'slow' : 'none'));
    const out = join(work, 'aborted');
    const ac = new AbortController();
    const reason = new Error('stop here');
    await expect(
      copy(`docker://${slow.host}/lib/big:v1`, `oci:${out}:v1`, {
        srcCredential: cred,
        signal: ac.signal,
        onProgress: (e) => {
          if (e.type === 'blob-progress' && e.bytes > 0 && e.descriptor.size > 1_000_000) ac.abort(reason);
        },
      }),
    ).rejects.toBe(reason);
    await slow.stop();
    const l = await OciLayout.open(out);
    expect((await l.listBlobFiles()).map((f) => f.digest)).not.toContain(pushed.descriptor.digest);
    expect(await l.tags()).toEqual([]);
    expect(await readdir(join(out, '.ocitool', 'tmp')).catch(() => [])).toEqual([]);
  });

  it('ls lists a repository\'s tags; inspect reads a registry manifest and config', async () => {
    const creds = `${reg.username}:${reg.password}`;
    for (const t of ['v2', 'v3']) await ok(ocitool(['push', '--creds', creds, `oci:${layout}:v1`, `docker://${reg.host}/team/a:${t}`], { env: env() }));
    expect((await ok(ocitool(['ls', '--creds', creds, `docker://${reg.host}/team/a`]))).split('\n').filter(Boolean).sort()).toEqual(['v1', 'v2', 'v3']);
    expect(lastLine(await ok(ocitool(['tag', '--creds', creds, `docker://${reg.host}/team/a:v3`, 'latest'])))).toBe(digest);
    expect(lastLine(await ok(ocitool(['tag', '--creds', creds, `docker://${reg.host}/team/a:v3`, `docker://${reg.host}/team/a:stable`])))).toBe(digest);
    expect((await ocitool(['tag', '--creds', creds, `docker://${reg.host}/team/a:v3`, `docker://${reg.host}/team/other:x`])).code).toBe(2);
    expect((await ok(ocitool(['ls', '--creds', creds, `docker://${reg.host}/team/a`]))).split('\n').filter(Boolean).sort()).toEqual(['latest', 'stable', 'v1', 'v2', 'v3']);
    const cfg = JSON.parse(await ok(ocitool(['inspect', '--config', '--creds', creds, `docker://${reg.host}/team/a:v2`])));
    expect(cfg.config.Cmd).toEqual(['/app/main.sh']);
  });

  it('push and pull check their direction; build --tag docker:// builds and pushes', async () => {
    const wrong = await ocitool(['push', `oci:${layout}:v1`, `oci:${join(work, 'x')}:v1`]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/push: .*must be a registry/);
    const creds = `${reg.username}:${reg.password}`;
    const built = await ok(ocitool(['build', '--creds', creds, '--tag', `docker://${reg.host}/team/built:b1`, '--from', `docker://${reg.host}/team/a:v1`, '--add', join(work, 'src') + ':/copy', '--env', 'X=1'], { env: env() }));
    const d = lastLine(built);
    const pulled = join(work, 'pulled-built');
    expect(lastLine(await ok(ocitool(['pull', '--creds', creds, `docker://${reg.host}/team/built:b1`, `oci:${pulled}:b1`], { env: env() })))).toBe(d);
    await ok(ocitool(['verify', '--diff-ids', pulled]));
    expect(JSON.parse(await ok(ocitool(['inspect', `oci:${pulled}:b1`]))).layers).toHaveLength(2);
  });
});

describe('pull what skopeo pushed', () => {
  it('a multi-platform OCI index and a Docker schema 2 image', async () => {
    const reg = await startRegistry();
    try {
      const l = join(work, 'multi');
      const amd = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:amd`, '--platform', 'linux/amd64', '--add', join(work, 'src')])));
      await ok(ocitool(['build', '--tag', `oci:${l}:arm`, '--platform', 'linux/arm64', '--add', join(work, 'src'), '--env', 'A=arm']));
      const idx = lastLine(await ok(ocitool(['index', 'create', '--tag', `oci:${l}:multi`, `oci:${l}:amd`, `oci:${l}:arm`])));
      await ok(skopeo(['copy', '--all', '--dest-tls-verify=false', `oci:${l}:multi`, `docker://${reg.host}/multi/img:m`]));
      await ok(skopeo(['copy', '--format', 'v2s2', '--dest-tls-verify=false', `oci:${l}:amd`, `docker://${reg.host}/multi/docker:d`]));
      const pulled = join(work, 'pulled');
      expect(lastLine(await ok(ocitool(['copy', `docker://${reg.host}/multi/img:m`, `oci:${pulled}:m`])))).toBe(idx);
      // Into a layout, Docker schema 2 becomes OCI (what skopeo and umoci open there), as skopeo does...
      const d = lastLine(await ok(ocitool(['copy', `docker://${reg.host}/multi/docker:d`, `oci:${pulled}:d`])));
      expect(d).not.toBe(amd); // skopeo converted it to Docker schema 2 (its config too)
      expect(JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${pulled}:d`]))).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(JSON.parse(await ok(skopeo(['inspect', `oci:${pulled}:d`]))).Digest).toBe(d);
      // ...unless told to keep the registry's bytes and digest.
      const registryDigest = JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/multi/docker:d`]))).Digest;
      expect(lastLine(await ok(ocitool(['copy', '--preserve-digests', `docker://${reg.host}/multi/docker:d`, `oci:${pulled}:kept`])))).toBe(registryDigest);
      expect(JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${pulled}:kept`]))).mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      await ok(ocitool(['verify', '--diff-ids', pulled]));
      // pull picks one platform from an index (this host's unless told), or keeps it all.
      const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
      const one = lastLine(await ok(ocitool(['pull', `docker://${reg.host}/multi/img:m`, `oci:${pulled}:host`])));
      expect(JSON.parse(await ok(ocitool(['inspect', '--config', `oci:${pulled}@${one}`]))).architecture).toBe(host);
      const arm = lastLine(await ok(ocitool(['pull', '--platform', 'linux/arm64', `docker://${reg.host}/multi/img:m`, `oci:${join(work, 'arm-only')}:a`])));
      expect(JSON.parse(await ok(ocitool(['inspect', '--config', `oci:${join(work, 'arm-only')}:a`]))).config.Env).toContain('A=arm');
      expect(arm).not.toBe(idx);
      expect(lastLine(await ok(ocitool(['pull', '--all-platforms', `docker://${reg.host}/multi/img:m`, `oci:${pulled}:all`])))).toBe(idx);
      const missing = await ocitool(['copy', `docker://${reg.host}/multi/img:nope`, `oci:${pulled}:x`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/manifest nope of multi\/img: not found \(404\)/);
    } finally {
      await reg.stop();
    }
  });
});
