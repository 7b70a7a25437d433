/**
 * Artifacts (issue 7): packing is byte-reproducible; artifacts attached to an image in the real
 * registry (distribution 2.8: no referrers API) are listed through the fallback tag, which a plain
 * HTTP request reads too; skopeo copies an artifact byte for byte; copy --referrers carries them;
 * pull never writes outside its directory.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/digest/digest.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import { lastLine, ocitool, jsonEvents } from './helpers/cli.js';
import { writeTestImage } from './helpers/images.js';
import { startRegistry, skopeoRegistryFlags, type TestRegistry } from './helpers/registry.js';
import { ok, skopeo } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;
let image: string;
const env = { ...process.env, SOURCE_DATE_EPOCH: '1700000000' };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-artifact-'));
  await mkdir(join(work, 'in/docs/deep'), { recursive: true });
  await writeFile(join(work, 'in/sbom.spdx.json'), '{"spdxVersion":"SPDX-2.3"}\n');
  await writeFile(join(work, 'in/sig.txt'), 'signature\n');
  await writeFile(join(work, 'in/docs/README.md'), '# docs\n');
  await writeFile(join(work, 'in/docs/deep/a.txt'), 'a\n');
  const layout = await OciLayout.init(join(work, 'image'));
  image = (await writeTestImage(layout, { tag: 'v1' })).manifest.digest;
  reg = await startRegistry();
  await ok(ocitool(['copy', `oci:${join(work, 'image')}:v1`, `docker://${reg.host}/team/app:v1`]));
});
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('artifact pack', () => {
  it('is byte-reproducible: the same inputs twice give the same manifest digest', async () => {
    const pack = (n: number): Promise<string> =>
      ok(ocitool(['artifact', 'pack', '--artifact-type', 'application/vnd.example.bundle', '--tag', `oci:${join(work, `repro-${n}`)}:a`, join(work, 'in/sbom.spdx.json:application/spdx+json'), join(work, 'in/docs'), '--annotation', 'org.example.team=qa'], { env }));
    const a = lastLine(await pack(1));
    const b = lastLine(await pack(2));
    expect(a).toBe(b);
    const m = JSON.parse(await ok(ocitool(['inspect', '--raw', `oci:${join(work, 'repro-1')}:a`]))) as { artifactType: string; config: { mediaType: string; size: number }; layers: { mediaType: string; annotations: Record<string, string> }[]; annotations: Record<string, string> };
    expect(m.artifactType).toBe('application/vnd.example.bundle');
    expect(m.config).toMatchObject({ mediaType: MediaType.OciEmpty, size: 2 });
    expect(m.layers.map((l) => [l.mediaType, l.annotations['org.opencontainers.image.title']])).toEqual([
      ['application/spdx+json', 'sbom.spdx.json'],
      [MediaType.OciLayerGzip, 'docs'],
    ]);
    expect(m.layers[1]!.annotations['io.deis.oras.content.unpack']).toBe('true');
    expect(m.annotations).toEqual({ 'org.example.team': 'qa', 'org.opencontainers.image.created': '2023-11-14T22:13:20Z' });
    // And back out: files by title, the directory unpacked.
    const out = join(work, 'pulled');
    await ok(ocitool(['artifact', 'pull', `oci:${join(work, 'repro-1')}:a`, out]));
    expect(await readFile(join(out, 'sbom.spdx.json'), 'utf8')).toBe('{"spdxVersion":"SPDX-2.3"}\n');
    expect(await readFile(join(out, 'docs/deep/a.txt'), 'utf8')).toBe('a\n');
  });
});

describe('referrers in the registry (fallback tag)', () => {
  let sbom: string;
  let sig: string;
  beforeAll(async () => {
    sbom = lastLine(await ok(ocitool(['artifact', 'pack', '--artifact-type', 'application/spdx+json', '--subject', `docker://${reg.host}/team/app:v1`, join(work, 'in/sbom.spdx.json')], { env })));
    sig = lastLine(await ok(ocitool(['artifact', 'pack', '--artifact-type', 'application/vnd.example.signature', '--subject', `docker://${reg.host}/team/app:v1`, join(work, 'in/sig.txt')], { env })));
  });

  it('lists both referrers, by type too; the fallback tag holds an index of both', async () => {
    const all = jsonEvents<{ digest: string; artifactType: string }>(await ok(ocitool(['referrers', '--json', `docker://${reg.host}/team/app:v1`])), 'referrer');
    expect(all.map((d) => d.digest).sort()).toEqual([sbom, sig].sort());
    const onlySig = jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', '--artifact-type', 'application/vnd.example.signature', `docker://${reg.host}/team/app:v1`])), 'referrer');
    expect(onlySig.map((d) => d.digest)).toEqual([sig]);
    // A plain HTTP check of what the fallback tag holds.
    const res = await fetch(`http://${reg.host}/v2/team/app/manifests/${image.replace(':', '-')}`, { headers: { accept: MediaType.OciIndex } });
    expect(res.status).toBe(200);
    const index = (await res.json()) as { mediaType: string; manifests: { digest: string; artifactType: string; mediaType: string }[] };
    expect(index.mediaType).toBe(MediaType.OciIndex);
    expect(index.manifests.map((m) => [m.digest, m.artifactType, m.mediaType]).sort()).toEqual(
      [
        [sbom, 'application/spdx+json', MediaType.OciManifest],
        [sig, 'application/vnd.example.signature', MediaType.OciManifest],
      ].sort(),
    );
  });

  it('skopeo copies an artifact byte for byte', async () => {
    const out = join(work, 'skopeo-artifact');
    await ok(skopeo(['copy', ...skopeoRegistryFlags(reg, 'src'), `docker://${reg.host}/team/app@${sbom}`, `oci:${out}:s`]));
    const layout = await OciLayout.open(out);
    const desc = await layout.resolve('s');
    expect(desc.digest).toBe(sbom);
    expect(digestOf(await layout.fetchBytes(desc))).toBe(sbom);
  });

  it('copy --referrers carries the image with both referrers to another repository', async () => {
    await ok(ocitool(['copy', '--referrers', `docker://${reg.host}/team/app:v1`, `docker://${reg.host}/other/app:v1`]));
    const listed = jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', `docker://${reg.host}/other/app:v1`])), 'referrer');
    expect(listed.map((d) => d.digest).sort()).toEqual([sbom, sig].sort());
    // And into a layout: listed there by scanning index.json.
    const dir = join(work, 'with-referrers');
    await ok(ocitool(['copy', '--referrers', `docker://${reg.host}/team/app:v1`, `oci:${dir}:v1`]));
    const local = jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', `oci:${dir}:v1`])), 'referrer');
    expect(local.map((d) => d.digest).sort()).toEqual([sbom, sig].sort());
    // And into an oci-archive, and on from it to yet another repository.
    const archive = join(work, 'with-referrers.tar');
    await ok(ocitool(['copy', '--referrers', `oci:${dir}:v1`, `oci-archive:${archive}:v1`]));
    const inArchive = jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', `oci-archive:${archive}:v1`])), 'referrer');
    expect(inArchive.map((d) => d.digest).sort()).toEqual([sbom, sig].sort());
    await ok(ocitool(['copy', '--referrers', `oci-archive:${archive}:v1`, `docker://${reg.host}/third/app:v1`]));
    const third = jsonEvents<{ digest: string }>(await ok(ocitool(['referrers', '--json', `docker://${reg.host}/third/app:v1`])), 'referrer');
    expect(third.map((d) => d.digest).sort()).toEqual([sbom, sig].sort());
  });
});

describe('artifact pull safety', () => {
  it('refuses a title with ../ and writes nothing outside DIR (nothing at all)', async () => {
    const dir = join(work, 'evil');
    const layout = await OciLayout.init(dir);
    const blob = await layout.putBytes('pwned\n', 'text/plain');
    await layout.putBytes('{}', MediaType.OciEmpty);
    const good = await layout.putBytes('fine\n', 'text/plain');
    const m = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: 'application/vnd.example.evil',
      config: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 },
      layers: [
        { ...good, annotations: { 'org.opencontainers.image.title': 'fine.txt' } },
        { ...blob, annotations: { 'org.opencontainers.image.title': '../escaped.txt' } },
      ],
    };
    await layout.tag(await layout.putBytes(JSON.stringify(m), MediaType.OciManifest), 'evil');
    const sandbox = join(work, 'pull-sandbox');
    await mkdir(sandbox);
    const res = await ocitool(['artifact', 'pull', `oci:${dir}:evil`, join(sandbox, 'out')]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/title "\.\.\/escaped\.txt": its path climbs out/);
    expect(existsSync(join(sandbox, 'escaped.txt'))).toBe(false);
    expect(await readdir(sandbox)).toEqual([]);
  });
});
