/**
 * Layouts that open everywhere (issue 14): what ocitool writes into oci: and oci-archive: is read by
 * skopeo, umoci and oci-image-tool (when installed): Docker schema 2 becomes OCI unless digests are
 * to be kept, an untagged copy is listed, base.name is an image reference, a platform's variant is
 * recorded; index create checks before it writes, and writes to registries too.
 */
import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLine, ocitool } from './helpers/cli.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { makeTree } from './helpers/trees.js';
import { ok, runTool, skopeo, umoci, type ToolResult } from './helpers/tools.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

const hasOciImageTool = ((): boolean => {
  try {
    execFileSync('which', ['oci-image-tool'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const ociImageTool = (args: string[]): Promise<ToolResult> => runTool('oci-image-tool', args);

interface Entry {
  mediaType: string;
  digest: string;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}
const indexOf = async (dir: string): Promise<{ manifests: Entry[] }> => JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
const blobJson = async (dir: string, digest: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)), 'utf8'));

/** Every media type in the image at `digest` in a layout: the manifest's (or index's), its config's and layers'. */
async function mediaTypes(dir: string, digest: string): Promise<string[]> {
  const doc = (await blobJson(dir, digest)) as { mediaType?: string; manifests?: Entry[]; config?: Entry; layers?: Entry[] };
  if (doc.manifests) return [doc.mediaType ?? OCI_INDEX, ...(await Promise.all(doc.manifests.map((m) => mediaTypes(dir, m.digest)))).flat()];
  return [doc.mediaType ?? OCI_MANIFEST, doc.config!.mediaType, ...doc.layers!.map((l) => l.mediaType)];
}

/** skopeo, umoci and oci-image-tool all open the image tagged `tag` in the layout `dir`. */
async function othersRead(dir: string, tag: string): Promise<void> {
  const inspected = JSON.parse(await ok(skopeo(['inspect', `oci:${dir}:${tag}`])));
  expect(inspected.Layers.length).toBeGreaterThan(0);
  const stat = await ok(umoci(['stat', '--image', `${dir}:${tag}`, '--json']));
  expect(JSON.parse(stat).history.length).toBeGreaterThan(0);
  if (hasOciImageTool) expect(await ok(ociImageTool(['validate', '--type', 'image', '--ref', `name=${tag}`, dir]))).toMatch(/OK/);
}

/** Path, size and mtime of every file under `dir` (a layout's whole state). */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const s = await lstat(p);
      if (s.isDirectory()) await walk(p);
      else out.push(`${p} ${s.size} ${s.mtimeMs}`);
    }
  };
  await walk(dir);
  return out;
}

let work: string;
let src: string;
let dockerLayout: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-readers-'));
  src = join(work, 'src');
  await makeTree(src, { 'etc/os-release': 'ID=test\n', 'app/run.sh': { file: 'echo hi\n', mode: 0o755 } });
  // Docker-typed images in a layout, as an explicit --format docker writes them (and keeps them).
  dockerLayout = join(work, 'docker');
  await ok(ocitool(['build', '--tag', `oci:${dockerLayout}:amd`, '--platform', 'linux/amd64', '--add', src, '--format', 'docker']));
  await ok(ocitool(['build', '--tag', `oci:${dockerLayout}:arm`, '--platform', 'linux/arm64', '--add', src, '--env', 'A=arm', '--format', 'docker']));
  await ok(ocitool(['index', 'create', '--format', 'docker', '--tag', `oci:${dockerLayout}:list`, `oci:${dockerLayout}:amd`, `oci:${dockerLayout}:arm`]));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('Docker schema 2 into a layout becomes OCI', () => {
  it('an explicit --format docker stays as asked (build, index create)', async () => {
    const idx = await indexOf(dockerLayout);
    expect(idx.manifests.map((m) => m.mediaType)).toEqual([DOCKER_MANIFEST, DOCKER_MANIFEST, DOCKER_LIST]);
  });

  it('copy of a Docker manifest and a Docker list: OCI throughout; skopeo, umoci and oci-image-tool read them', async () => {
    const out = join(work, 'converted');
    const one = lastLine(await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci:${out}:amd`])));
    const all = lastLine(await ok(ocitool(['copy', `oci:${dockerLayout}:list`, `oci:${out}:list`])));
    const idx = await indexOf(out);
    expect(idx.manifests.map((m) => [m.mediaType, m.digest])).toEqual([
      [OCI_MANIFEST, one],
      [OCI_INDEX, all],
    ]);
    // The platform the source entry was listed with stays on the converted entry.
    expect(idx.manifests[0]!.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    for (const d of [one, all]) expect((await mediaTypes(out, d)).filter((t) => t.includes('docker'))).toEqual([]);
    await ok(ocitool(['verify', '--diff-ids', out]));
    await othersRead(out, 'amd');
    const arm = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', '--config', `oci:${out}:list`])));
    expect(arm.config.Env).toContain('A=arm');
    if (hasOciImageTool) await ok(ociImageTool(['validate', '--type', 'image', out]));
  });

  it('index create of Docker images into a layout: an OCI index of OCI images, unless --preserve-digests', async () => {
    const l = join(work, 'index-of-docker');
    const [amd, arm] = (await indexOf(dockerLayout)).manifests.map((m) => m.digest);
    await ok(ocitool(['index', 'create', '--tag', `oci:${l}:multi`, `oci:${dockerLayout}:amd`, `oci:${dockerLayout}:arm`]));
    await ok(ocitool(['index', 'create', '--tag', `oci:${l}:fromlist`, `oci:${dockerLayout}:list`]));
    const entries = (await indexOf(l)).manifests;
    for (const e of entries) {
      expect(e.mediaType).toBe(OCI_INDEX);
      expect((await mediaTypes(l, e.digest)).filter((t) => t.includes('docker'))).toEqual([]);
    }
    const children = ((await blobJson(l, entries[0]!.digest)) as { manifests: Entry[] }).manifests;
    expect(children.map((c) => c.platform?.architecture)).toEqual(['amd64', 'arm64']);
    expect(children.map((c) => c.digest)).not.toContain(amd);
    expect(((await blobJson(l, entries[1]!.digest)) as { manifests: Entry[] }).manifests.map((c) => c.digest)).toEqual(children.map((c) => c.digest));
    await ok(ocitool(['verify', '--diff-ids', l]));
    const armCfg = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', '--config', `oci:${l}:multi`])));
    expect(armCfg.config.Env).toContain('A=arm');
    // (umoci 0.4.7 opens manifests only, not an index: its images are read by umoci in the tests above.)
    if (hasOciImageTool) await ok(ociImageTool(['validate', '--type', 'imageIndex', join(l, 'blobs', 'sha256', entries[0]!.digest.slice(7))]));
    const kept = join(work, 'index-kept');
    await ok(ocitool(['index', 'create', '--preserve-digests', '--tag', `oci:${kept}:multi`, `oci:${dockerLayout}:amd`, `oci:${dockerLayout}:arm`]));
    const keptIndex = (await blobJson(kept, (await indexOf(kept)).manifests[0]!.digest)) as { manifests: Entry[] };
    expect(keptIndex.manifests.map((m) => [m.mediaType, m.digest])).toEqual([
      [DOCKER_MANIFEST, amd],
      [DOCKER_MANIFEST, arm],
    ]);
  });

  it('into an oci-archive too: skopeo reads it', async () => {
    const file = join(work, 'img.oci.tar');
    const d = lastLine(await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci-archive:${file}:amd`])));
    const inspected = JSON.parse(await ok(skopeo(['inspect', '--raw', `oci-archive:${file}:amd`])));
    expect(inspected.mediaType).toBe(OCI_MANIFEST);
    expect(JSON.parse(await ok(skopeo(['inspect', `oci-archive:${file}:amd`]))).Digest).toBe(d);
  });

  it('--preserve-digests keeps the Docker bytes and digests; --referrers implies it; --format docker stays', async () => {
    const amd = (await indexOf(dockerLayout)).manifests[0]!.digest;
    const list = (await indexOf(dockerLayout)).manifests[2]!.digest;
    const out = join(work, 'kept');
    expect(lastLine(await ok(ocitool(['copy', '--preserve-digests', `oci:${dockerLayout}:amd`, `oci:${out}:p`])))).toBe(amd);
    expect(lastLine(await ok(ocitool(['copy', '--preserve-digests', `oci:${dockerLayout}:list`, `oci:${out}:l`])))).toBe(list);
    expect(lastLine(await ok(ocitool(['copy', '--referrers', `oci:${dockerLayout}:amd`, `oci:${out}:r`])))).toBe(amd);
    expect(lastLine(await ok(ocitool(['copy', '--format', 'docker', `oci:${dockerLayout}:amd`, `oci:${out}:f`])))).toBe(amd);
    expect((await indexOf(out)).manifests.map((m) => m.mediaType)).toEqual([DOCKER_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_MANIFEST]);
    await ok(ocitool(['verify', '--diff-ids', out]));
    // Which is what the readers cannot open (the README says so).
    expect((await skopeo(['inspect', `oci:${out}:p`])).code).not.toBe(0);
    // Keeping every digest and converting contradict each other: a usage error, nothing written.
    const both = await ocitool(['copy', '--preserve-digests', '--format', 'oci', `oci:${dockerLayout}:amd`, `oci:${join(work, 'both')}:x`]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^ocitool: --preserve-digests keeps every digest: it cannot go with --format or --compression/);
    await expect(lstat(join(work, 'both'))).rejects.toThrow(/ENOENT/);
  });

  it('a docker-archive always comes as OCI, --preserve-digests or not', async () => {
    const sample = join(import.meta.dirname, '../testdata/docker-archive/almostempty.tar');
    const out = join(work, 'from-archive');
    const d = lastLine(await ok(ocitool(['copy', `docker-archive:${sample}`, `oci:${out}:a`])));
    const p = lastLine(await ok(ocitool(['copy', '--preserve-digests', `docker-archive:${sample}`, `oci:${out}:p`])));
    expect(p).toBe(d);
    expect(await mediaTypes(out, d)).toEqual([OCI_MANIFEST, 'application/vnd.oci.image.config.v1+json', 'application/vnd.oci.image.layer.v1.tar+gzip']);
    await othersRead(out, 'a');
  });
});

describe('an untagged copy is listed in index.json', () => {
  it('ls shows <none>, inspect and skopeo find it as the only image, gc keeps it', async () => {
    const out = join(work, 'untagged');
    const d = lastLine(await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci:${out}`])));
    const idx = await indexOf(out);
    expect(idx.manifests).toHaveLength(1);
    expect(idx.manifests[0]!.digest).toBe(d);
    expect(idx.manifests[0]!.annotations?.[REF_NAME]).toBeUndefined(); // the source's tag is not carried over
    expect(await ok(ocitool(['ls', out]))).toMatch(new RegExp(`^<none>\\s+${d}\\s+oci-manifest`, 'm'));
    expect(JSON.parse(await ok(ocitool(['inspect', `oci:${out}`]))).mediaType).toBe(OCI_MANIFEST);
    expect(JSON.parse(await ok(skopeo(['inspect', `oci:${out}`]))).Digest).toBe(d);
    expect(lastLine(await ok(ocitool(['gc', out])))).toMatch(/^removed 0 blobs/);
    expect(lastLine(await ok(ocitool(['verify', out])))).toMatch(/3 blobs verified, 0 unreferenced/);
    if (hasOciImageTool) await ok(ociImageTool(['validate', '--type', 'image', out]));
    // Copied again, then tagged: one entry, the untagged one replaced by the tag.
    await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci:${out}`]));
    await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci:${out}:t`]));
    expect((await indexOf(out)).manifests.map((m) => m.annotations?.[REF_NAME])).toEqual(['t']);
  });

  it('an untagged oci-archive holds its image in index.json', async () => {
    const file = join(work, 'untagged.oci.tar');
    const d = lastLine(await ok(ocitool(['copy', `oci:${dockerLayout}:amd`, `oci-archive:${file}`])));
    expect(JSON.parse(await ok(skopeo(['inspect', `oci-archive:${file}`]))).Digest).toBe(d);
  });
});

describe('--platform records its variant', () => {
  it('build --platform linux/arm64/v8: in the config and in the index entries; skopeo finds it by variant', async () => {
    const l = join(work, 'variant');
    const d = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:arm`, '--platform', 'linux/arm64/v8', '--add', src])));
    const config = JSON.parse(await ok(ocitool(['inspect', '--config', `oci:${l}:arm`])));
    expect([config.architecture, config.variant]).toEqual(['arm64', 'v8']);
    expect((await indexOf(l)).manifests[0]!.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    await ok(ocitool(['build', '--tag', `oci:${l}:amd`, '--platform', 'linux/amd64', '--add', src]));
    await ok(ocitool(['index', 'create', '--tag', `oci:${l}:multi`, `oci:${l}:amd`, `oci:${l}:arm`]));
    const idx = (await blobJson(l, (await indexOf(l)).manifests[2]!.digest)) as { manifests: Entry[] };
    expect(idx.manifests.map((m) => m.platform)).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    const picked = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', '--override-variant', 'v8', 'inspect', '--config', `oci:${l}:multi`])));
    expect([picked.architecture, picked.variant]).toEqual(['arm64', 'v8']);
    // Picking it back out still matches a plain linux/arm64 request.
    const one = join(work, 'variant-one');
    expect(lastLine(await ok(ocitool(['copy', '--platform', 'linux/arm64', `oci:${l}:multi`, `oci:${one}:a`])))).toBe(d);
    // (oci-image-tool rc1 finds no unique ref.name in a layout holding an index and an arm image: a layout of one image, and the index alone.)
    await othersRead(one, 'a');
    if (hasOciImageTool) await ok(ociImageTool(['validate', '--type', 'imageIndex', join(l, 'blobs', 'sha256', (await indexOf(l)).manifests[2]!.digest.slice(7))]));
  });
});

describe('index create checks first and writes to registries', () => {
  it('--format docker of OCI images: refused before the destination is created or touched', async () => {
    const l = join(work, 'oci-images');
    await ok(ocitool(['build', '--tag', `oci:${l}:a`, '--add', src]));
    const fresh = join(work, 'never-made');
    const res = await ocitool(['index', 'create', '--format', 'docker', '--tag', `oci:${fresh}:list`, `oci:${l}:a`]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(new RegExp(`^ocitool: oci:${l}:a: sha256:[0-9a-f]{64} is a ${OCI_MANIFEST.replace(/[.+]/g, '\\$&')}: a Docker manifest list can only hold Docker schema 2 manifests`));
    await expect(lstat(fresh)).rejects.toThrow(/ENOENT/);
    // Into an existing layout: not one file changed.
    const before = await snapshot(dockerLayout);
    const into = await ocitool(['index', 'create', '--format', 'docker', '--tag', `oci:${dockerLayout}:mixed`, `oci:${dockerLayout}:amd`, `oci:${l}:a`]);
    expect(into.code).toBe(1);
    expect(await snapshot(dockerLayout)).toEqual(before);
    // And a second image of one platform, likewise.
    await ok(ocitool(['build', '--tag', `oci:${l}:b`, '--add', src, '--env', 'B=1']));
    const dup = await ocitool(['index', 'create', '--tag', `oci:${fresh}:dup`, `oci:${l}:a`, `oci:${l}:b`]);
    expect(dup.code).toBe(2);
    await expect(lstat(fresh)).rejects.toThrow(/ENOENT/);
  });

  describe('with a registry', () => {
    let reg: TestRegistry;
    beforeAll(async () => {
      reg = await startRegistry();
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it('create and add write an index to a registry; skopeo reads it; a Docker list too; a refused one pushes nothing', async () => {
      const l = join(work, 'to-registry');
      const amd = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:amd`, '--platform', 'linux/amd64', '--add', src])));
      const arm = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:arm`, '--platform', 'linux/arm64/v8', '--add', src, '--env', 'A=arm'])));
      // A source in the same registry: its blobs are mounted, not uploaded again.
      await ok(ocitool(['copy', `oci:${l}:arm`, `docker://${reg.host}/team/arm:1`]));
      const ref = `docker://${reg.host}/team/multi:v1`;
      const idx = lastLine(await ok(ocitool(['index', 'create', '--tag', ref, `oci:${l}:amd`, `docker://${reg.host}/team/arm:1`])));
      const raw = JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', '--raw', ref])));
      expect(raw.mediaType).toBe(OCI_INDEX);
      expect(raw.manifests.map((m: Entry) => [m.digest, m.platform])).toEqual([
        [amd, { os: 'linux', architecture: 'amd64' }],
        [arm, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
      ]);
      expect(JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', ref]))).Digest).toBe(idx);
      const armCfg = JSON.parse(await ok(skopeo(['--override-arch', 'arm64', 'inspect', '--tls-verify=false', '--config', ref])));
      expect(armCfg.config.Env).toContain('A=arm');

      // add: a new platform joins the index at the tag.
      const riscv = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:riscv`, '--platform', 'linux/riscv64', '--add', src])));
      const after = lastLine(await ok(ocitool(['index', 'add', '--tag', ref, `oci:${l}:riscv`])));
      const raw2 = JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', '--raw', ref])));
      expect(raw2.manifests.map((m: Entry) => m.digest)).toEqual([amd, arm, riscv]);
      expect(JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', ref]))).Digest).toBe(after);
      // Pulled back, verified.
      const back = join(work, 'from-registry');
      expect(lastLine(await ok(ocitool(['copy', ref, `oci:${back}:m`])))).toBe(after);
      await ok(ocitool(['verify', '--diff-ids', back]));

      // A Docker list to a registry; OCI images in it refused before anything is pushed.
      const dref = `docker://${reg.host}/team/dlist:v1`;
      await ok(ocitool(['index', 'create', '--format', 'docker', '--tag', dref, `oci:${dockerLayout}:amd`, `oci:${dockerLayout}:arm`]));
      expect(JSON.parse(await ok(skopeo(['inspect', '--tls-verify=false', '--raw', dref]))).mediaType).toBe(DOCKER_LIST);
      const refused = await ocitool(['index', 'create', '--format', 'docker', '--tag', `docker://${reg.host}/team/never:v1`, `oci:${l}:amd`]);
      expect(refused.code).toBe(1);
      expect((await skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/team/never:v1`])).code).not.toBe(0);
    });

    it('build --from a registry records base.name as HOST/REPO:TAG; a layout base records none', async () => {
      const l = join(work, 'bases');
      const arm = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:arm`, '--platform', 'linux/arm64', '--add', src])));
      const amd = lastLine(await ok(ocitool(['build', '--tag', `oci:${l}:amd`, '--add', src])));
      await ok(ocitool(['copy', `oci:${l}:arm`, `docker://${reg.host}/team/base:1`]));
      const b = join(work, 'based');
      await ok(ocitool(['build', '--tag', `oci:${b}:r`, '--from', `docker://${reg.host}/team/base:1`, '--add', `${src}:/more`]));
      await ok(ocitool(['build', '--tag', `oci:${b}:l`, '--from', `oci:${l}:amd`, '--add', `${src}:/more`]));
      const fromRegistry = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${b}:r`])));
      expect(fromRegistry.annotations['org.opencontainers.image.base.name']).toBe(`${reg.host}/team/base:1`);
      expect(fromRegistry.annotations['org.opencontainers.image.base.digest']).toBe(arm);
      const fromLayout = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${b}:l`])));
      expect(fromLayout.annotations['org.opencontainers.image.base.name']).toBeUndefined();
      expect(fromLayout.annotations['org.opencontainers.image.base.digest']).toBe(amd);
      await othersRead(b, 'r');
    });
  });
});
