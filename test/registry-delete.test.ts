/** rm of registry tags and manifests against the real registry; skopeo as the independent reader. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciLayout } from '../src/layout/layout.js';
import { lastLine, ocitool } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { skopeoRegistryFlags, startRegistry, type TestRegistry } from './helpers/registry.js';
import { skopeo } from './helpers/tools.js';

let work: string;
let src: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-rm-'));
  src = join(work, 'src');
  await writeTestImage(await OciLayout.init(src), { tag: 'v1' });
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function pushAs(reg: TestRegistry, ...refs: string[]): Promise<string> {
  let digest = '';
  for (const r of refs) {
    const res = await ocitool(['copy', '-q', ...(reg.username ? ['--creds', `${reg.username}:${reg.password}`] : []), `oci:${src}:v1`, `docker://${reg.host}/${r}`]);
    expect(res.code, res.stderr).toBe(0);
    digest = lastLine(res.stdout);
  }
  return digest;
}

/** What skopeo sees at a reference: its digest, or undefined when it is not there. */
async function seen(reg: TestRegistry, ref: string): Promise<string | undefined> {
  const r = await skopeo(['inspect', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/${ref}`]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { Digest: string }).Digest : undefined;
}

async function tags(reg: TestRegistry, repo: string): Promise<string[]> {
  const r = await skopeo(['list-tags', ...skopeoRegistryFlags(reg, 'plain'), `docker://${reg.host}/${repo}`]);
  return r.code === 0 ? ((JSON.parse(r.stdout) as { Tags: string[] | null }).Tags ?? []).sort() : [];
}

for (const auth of ['none', 'token'] as const) {
  describe(`rm in a registry (${auth} auth)`, () => {
    let reg: TestRegistry;
    const creds = (): string[] => (reg.username ? ['--creds', `${reg.username}:${reg.password}`] : []);
    beforeAll(async () => {
      reg = await startRegistry({ auth });
    }, 30_000);
    afterAll(async () => {
      await reg?.stop();
    });

    it('rm of one tag keeps a sibling tag of the same image, and the image itself', async () => {
      const digest = await pushAs(reg, 'app/x:a', 'app/x:b');
      const r = await ocitool(['rm', ...creds(), `docker://${reg.host}/app/x:a`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`deleted tag a of docker://${reg.host}/app/x (it named ${digest})`);
      expect(await seen(reg, 'app/x:a')).toBeUndefined();
      expect(await seen(reg, 'app/x:b')).toBe(digest);
      expect(await seen(reg, `app/x@${digest}`)).toBe(digest);
      expect(await tags(reg, 'app/x')).toEqual(['b']);
    }, 60_000);

    it('rm @DIGEST deletes the manifest and every tag naming it', async () => {
      const digest = await pushAs(reg, 'app/y:a', 'app/y:b');
      const r = await ocitool(['rm', ...creds(), `docker://${reg.host}/app/y@${digest}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(await seen(reg, `app/y@${digest}`)).toBeUndefined();
      expect(await tags(reg, 'app/y')).toEqual([]);
      const again = await ocitool(['rm', ...creds(), `docker://${reg.host}/app/y@${digest}`]);
      expect(again.code).toBe(1);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);
      expect(again.stderr).toContain(digest);
    }, 60_000);
  });
}

describe('rm in a registry that does not allow deleting', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ deleteEnabled: false });
  }, 30_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it('says so in one line, exit 1, and the tag still names the image', async () => {
    const digest = await pushAs(reg, 'app/z:a');
    for (const ref of [`docker://${reg.host}/app/z:a`, `docker://${reg.host}/app/z@${digest}`]) {
      const r = await ocitool(['rm', ref]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('storage.delete.enabled');
      expect(r.stderr).toContain(reg.host);
    }
    expect(await seen(reg, 'app/z:a')).toBe(digest);
    expect(await tags(reg, 'app/z')).toEqual(['a']);
  }, 60_000);

  it('a reference that cannot be removed is refused before anything is removed', async () => {
    const layout = join(work, 'keep');
    const c = await ocitool(['copy', '-q', `oci:${src}:v1`, `oci:${layout}:k`]);
    expect(c.code, c.stderr).toBe(0);
    const r = await ocitool(['rm', `oci:${layout}:k`, `docker-archive:${join(work, 'x.tar')}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('docker-archive');
    expect((await ocitool(['ls', `oci:${layout}`])).stdout).toContain('k');
  });
});
