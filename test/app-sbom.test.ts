/**
 * `build --app`'s SBOM: an SPDX 2.3 document of the production packages (express in, the dev
 * packages out), attached to the image as a referrer in a layout, an oci-archive and the real
 * registry (its fallback tag: distribution 2.8 has no referrers API); reproducible; `--sbom none`;
 * `--sbom spdx` without --app refused; docker-archive warned about; the library's build(to, {app})
 * giving the CLI's image; odd licenses in the lockfile carried as NOASSERTION, a hostile name refused.
 */
import { randomBytes } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../src/index.js';
import { exists } from '../src/layer/sources.js';
import { OciLayout } from '../src/layout/layout.js';
import { MediaType } from '../src/spec/media-types.js';
import type { ImageIndex, ImageManifest } from '../src/spec/types.js';
import { ROOT, jsonEvents, lastLine, ocitool } from './helpers/cli.js';
import { skopeoRegistryFlags, startRegistry } from './helpers/registry.js';
import { startReferrersProxy } from './helpers/referrers-proxy.js';
import { ok, runTool, skopeo } from './helpers/tools.js';

interface SpdxDoc {
  spdxVersion: string;
  dataLicense: string;
  SPDXID: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: { SPDXID: string; name: string; versionInfo?: string; licenseDeclared: string; downloadLocation: string; checksums?: { algorithm: string; checksumValue: string }[]; externalRefs: { referenceType: string; referenceLocator: string }[] }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

const CREATED = '2024-05-01T00:00:00Z';
let work: string;
let app: string;
let n = 0;
const out = (): string => join(work, `out-${++n}`);

beforeAll(async () => {
  work = join(tmpdir(), `ocitool-app-sbom-${randomBytes(6).toString('hex')}`);
  app = join(work, 'app');
  process.env.OCITOOL_CACHE_DIR = join(work, 'cache'); // the library's builds and the CLI's alike
  await cp(join(ROOT, 'testdata/app'), app, { recursive: true });
  await ok(runTool('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 90_000 }));
}, 120_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** The referrers `ocitool referrers REF --json` lists. */
async function referrersOf(ref: string): Promise<{ digest: string; artifactType?: string }[]> {
  return jsonEvents<{ digest: string; artifactType?: string }>(await ok(ocitool(['referrers', '--json', ref])), 'referrer');
}

/** The SPDX document of an SBOM artifact manifest in a layout. */
async function sbomIn(layoutDir: string, digest: string): Promise<{ manifest: ImageManifest; doc: SpdxDoc; bytes: Buffer }> {
  const l = await OciLayout.open(layoutDir);
  const manifest = JSON.parse((await l.fetchBytes(await l.resolve(digest))).toString()) as ImageManifest;
  const bytes = await l.fetchBytes(manifest.layers[0]!);
  return { manifest, doc: JSON.parse(bytes.toString()) as SpdxDoc, bytes };
}

function checkFixtureSbom(doc: SpdxDoc): void {
  expect(doc.spdxVersion).toBe('SPDX-2.3');
  expect(doc.dataLicense).toBe('CC0-1.0');
  expect(doc.SPDXID).toBe('SPDXRef-DOCUMENT');
  expect(doc.creationInfo.created).toBe(CREATED);
  expect(doc.creationInfo.creators[0]).toMatch(/^Tool: ocitool-\d/);
  const express = doc.packages.find((p) => p.name === 'express')!;
  expect(express).toMatchObject({ versionInfo: '4.21.2', licenseDeclared: 'MIT', downloadLocation: 'NOASSERTION' });
  expect(express.externalRefs).toEqual([{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:npm/express@4.21.2' }]);
  expect(express.checksums).toEqual([{ algorithm: 'SHA512', checksumValue: expect.stringMatching(/^[0-9a-f]{128}$/) }]);
  expect(doc.packages.find((p) => p.name === '@isaacs/string-locale-compare')!.externalRefs[0]!.referenceLocator).toBe('pkg:npm/%40isaacs/string-locale-compare@1.1.0');
  for (const dev of ['vitest', 'is-number']) expect(doc.packages.some((p) => p.name === dev)).toBe(false);
  const root = doc.packages[0]!;
  expect(root).toMatchObject({ name: 'hello-app', versionInfo: '1.2.3', licenseDeclared: 'MIT' });
  expect(doc.relationships).toContainEqual({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root.SPDXID });
  expect(doc.relationships).toContainEqual({ spdxElementId: root.SPDXID, relationshipType: 'DEPENDS_ON', relatedSpdxElement: express.SPDXID });
  // express's own dependencies hang off express, as the lockfile links them.
  const bodyParser = doc.packages.find((p) => p.name === 'body-parser')!;
  expect(doc.relationships).toContainEqual({ spdxElementId: express.SPDXID, relationshipType: 'DEPENDS_ON', relatedSpdxElement: bodyParser.SPDXID });
  expect(JSON.stringify(doc)).not.toMatch(/registry\.|npmjs/);
}

describe('build --app: the SBOM', () => {
  it('in a layout: a referrer of the image (application/spdx+json) listing express and no dev package; the note says it', async () => {
    const layout = out();
    const r = await ocitool(['build', '--app', app, '--tag', `oci:${layout}:v1`, '--created', CREATED]);
    expect(r.code, r.stderr).toBe(0);
    const image = lastLine(r.stdout);
    const found = await referrersOf(`oci:${layout}:v1`);
    expect(found).toHaveLength(1);
    expect(found[0]!.artifactType).toBe('application/spdx+json');
    const note = r.stderr.split('\n').filter((l) => l.startsWith('sbom '));
    expect(note).toEqual([`sbom ${found[0]!.digest} (${73} packages)`]);
    const { manifest, doc } = await sbomIn(layout, found[0]!.digest);
    expect(manifest).toMatchObject({ artifactType: 'application/spdx+json', config: { mediaType: MediaType.OciEmpty, size: 2 }, subject: { digest: image } });
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(['application/spdx+json']);
    checkFixtureSbom(doc);
    expect(doc.packages).toHaveLength(74); // the app and its 73 distinct production packages
    expect((await ok(ocitool(['verify', `oci:${layout}`]))).length).toBeGreaterThan(0);
  }, 60_000);

  it('the same --created gives the same SBOM (and image) digest; --json gets an sbom event', async () => {
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const r = await ocitool(['build', '--json', '--app', app, '--tag', `oci:${out()}:v1`, '--created', CREATED]);
      expect(r.code, r.stderr).toBe(0);
      runs.push({ sbom: jsonEvents<{ digest: string; subject: string; packages: number; artifactType: string }>(r.stdout, 'sbom'), done: jsonEvents<{ digest: string }>(r.stdout, 'done')[0]!.digest });
    }
    expect(runs[0]!.sbom).toHaveLength(1);
    expect(runs[0]!.sbom[0]).toMatchObject({ subject: runs[0]!.done, packages: 73, artifactType: 'application/spdx+json' });
    expect(runs[1]!.sbom[0]!.digest).toBe(runs[0]!.sbom[0]!.digest);
    expect(runs[1]!.done).toBe(runs[0]!.done);
  }, 60_000);

  it('a package that --exclude or --ignore-file leaves out of the image is not in its SBOM; one still in it is', async () => {
    const ignoreFile = join(work, 'sbom.ignore');
    await writeFile(ignoreFile, 'node_modules/depd\n');
    const layout = out();
    const r = await ocitool(['build', '--json', '--app', app, '--exclude', 'node_modules/ms', '--ignore-file', ignoreFile, '--tag', `oci:${layout}:v1`, '--created', CREATED]);
    expect(r.code, r.stderr).toBe(0);
    // The dependency layer as built: ms 2.1.3 (node_modules/ms) and depd gone, debug's own ms 2.0.0 kept.
    const l = await OciLayout.open(layout);
    const image = JSON.parse((await l.fetchBytes(await l.resolve('v1'))).toString()) as ImageManifest;
    const names = (await ok(runTool('tar', ['-tzf', l.blobPath(image.layers[0]!.digest)]))).split('\n');
    expect(names).toContain('app/node_modules/debug/node_modules/ms/package.json');
    expect(names.filter((n) => /^app\/node_modules\/(ms|depd)\//.test(n))).toEqual([]);
    const sbom = jsonEvents<{ digest: string; packages: number }>(r.stdout, 'sbom')[0]!;
    const { doc } = await sbomIn(layout, sbom.digest);
    const listed = doc.packages.map((p) => `${p.name}@${p.versionInfo}`);
    expect(listed).toContain('ms@2.0.0');
    expect(listed.filter((p) => p === 'ms@2.1.3' || p.startsWith('depd@'))).toEqual([]);
    expect(sbom.packages).toBe(73 - 2);
  }, 60_000);

  it('--sbom none attaches nothing', async () => {
    const layout = out();
    const r = await ocitool(['build', '--app', app, '--sbom', 'none', '--tag', `oci:${layout}:v1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/^sbom /m);
    expect(await referrersOf(`oci:${layout}:v1`)).toEqual([]);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex;
    expect(index.manifests).toHaveLength(1);
  }, 60_000);

  it('--sbom spdx without --app: a usage error in one line, exit 2, nothing written', async () => {
    const layout = out();
    const r = await ocitool(['build', '--sbom', 'spdx', '--add', join(app, 'lib'), '--tag', `oci:${layout}:v1`]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--sbom spdx: needs --app DIR/)]);
    expect(await exists(layout)).toBe(false);
  });

  it('a docker-archive cannot hold it: one warning line, the image written, exit 0', async () => {
    const file = join(work, 'app.tar');
    const r = await ocitool(['build', '--app', app, '--tag', `docker-archive:${file}:app:v1`]);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => /warning/i.test(l));
    expect(warnings).toEqual([expect.stringMatching(/docker-archive.*cannot hold the SBOM/)]);
    expect(await exists(file)).toBe(true);
  }, 60_000);

  it('in an oci-archive: listed in its index.json', async () => {
    const file = join(work, 'app-oci.tar');
    await ok(ocitool(['build', '--app', app, '--tag', `oci-archive:${file}:v1`]));
    const found = await referrersOf(`oci-archive:${file}:v1`);
    expect(found.map((f) => f.artifactType)).toEqual(['application/spdx+json']);
  }, 60_000);

  it('pushed to the registry: referrers finds it (through the fallback tag), its blob is the SPDX document, skopeo still copies the image', async () => {
    const reg = await startRegistry();
    try {
      const ref = `docker://${reg.host}/team/app:v1`;
      const r = await ocitool(['build', '--app', app, '--tag', ref, '--created', CREATED]);
      expect(r.code, r.stderr).toBe(0);
      const image = lastLine(r.stdout);
      const found = await referrersOf(ref);
      expect(found.map((f) => f.artifactType)).toEqual(['application/spdx+json']);
      // distribution 2.8 has no referrers API: the fallback tag holds the index.
      const fallback = (await (await fetch(`${reg.url}/v2/team/app/manifests/${image.replace(':', '-')}`, { headers: { accept: MediaType.OciIndex } })).json()) as ImageIndex;
      expect(fallback.manifests.map((m) => m.digest)).toEqual([found[0]!.digest]);
      const m = (await (await fetch(`${reg.url}/v2/team/app/manifests/${found[0]!.digest}`, { headers: { accept: MediaType.OciManifest } })).json()) as ImageManifest;
      expect(m.subject?.digest).toBe(image);
      const doc = (await (await fetch(`${reg.url}/v2/team/app/blobs/${m.layers[0]!.digest}`)).json()) as SpdxDoc;
      checkFixtureSbom(doc);
      const copied = join(work, 'skopeo-copy');
      await ok(skopeo(['copy', ...skopeoRegistryFlags(reg, 'src'), ref, `oci:${copied}:v1`]));
      const l = await OciLayout.open(copied);
      expect((await l.resolve('v1')).digest).toBe(image);
    } finally {
      await reg.stop();
    }
  }, 90_000);
});

describe('a registry with the referrers API (distribution-spec 1.1)', () => {
  it('the SBOM is found through the API, and no fallback tag is written', async () => {
    const reg = await startRegistry();
    const proxy = await startReferrersProxy(reg.host);
    try {
      const ref = `docker://${proxy.host}/team/app:v1`;
      const r = await ocitool(['build', '--app', app, '--tag', ref, '--created', CREATED]);
      expect(r.code, r.stderr).toBe(0);
      const image = lastLine(r.stdout);
      // The build asked the API, which answered: no fallback tag was read or written.
      expect(proxy.log.some((l) => l.method === 'GET' && l.path === `/v2/team/app/referrers/${image}`)).toBe(true);
      const fallback = `/v2/team/app/manifests/${image.replace(':', '-')}`;
      expect(proxy.log.filter((l) => l.path === fallback)).toEqual([]);
      expect((await fetch(`${reg.url}${fallback}`, { method: 'HEAD', headers: { accept: MediaType.OciIndex } })).status).toBe(404);
      // referrers lists it from the API; its subject is the image, its blob the SPDX document.
      const found = await referrersOf(ref);
      expect(found.map((f) => f.artifactType)).toEqual(['application/spdx+json']);
      const m = (await (await fetch(`${reg.url}/v2/team/app/manifests/${found[0]!.digest}`, { headers: { accept: MediaType.OciManifest } })).json()) as ImageManifest;
      expect(m.subject?.digest).toBe(image);
      checkFixtureSbom((await (await fetch(`${reg.url}/v2/team/app/blobs/${m.layers[0]!.digest}`)).json()) as SpdxDoc);
    } finally {
      await proxy.stop();
      await reg.stop();
    }
  }, 90_000);
});

describe('the library: build(to, { app })', () => {
  it('gives the same image and SBOM as the CLI for the same inputs and created time', async () => {
    const cli = await ocitool(['build', '--json', '--app', app, '--tag', `oci:${out()}:v1`, '--created', CREATED]);
    expect(cli.code, cli.stderr).toBe(0);
    const layout = out();
    const warnings: string[] = [];
    const result = await build(`oci:${layout}:v1`, { app, created: Date.parse(CREATED) / 1000, warn: (m) => warnings.push(m) });
    expect(result.manifest.digest).toBe(jsonEvents<{ digest: string }>(cli.stdout, 'done')[0]!.digest);
    expect(result.sbom?.descriptor.digest).toBe(jsonEvents<{ digest: string }>(cli.stdout, 'sbom')[0]!.digest);
    expect(result.sbom?.packages).toBe(73);
    expect(warnings).toEqual([]);
    const { doc } = await sbomIn(layout, result.sbom!.descriptor.digest);
    checkFixtureSbom(doc);
    // package.json's config defaults came along.
    const l = await OciLayout.open(layout);
    const manifest = JSON.parse((await l.fetchBytes(result.manifest)).toString()) as ImageManifest;
    const config = JSON.parse((await l.fetchBytes(manifest.config)).toString()) as { config: { WorkingDir: string; Env: string[]; Entrypoint: string[] } };
    expect(config.config).toMatchObject({ WorkingDir: '/app', Entrypoint: ['node', 'index.js'] });
    expect(config.config.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'GREETING=hello']));
  }, 60_000);

  it("sbom: 'none' and appCache: 'off' write no SBOM and no cache; sbom: 'spdx' without app is a usage error", async () => {
    const cacheDir = join(work, 'no-cache-dir');
    const before = process.env.OCITOOL_CACHE_DIR;
    process.env.OCITOOL_CACHE_DIR = cacheDir;
    try {
      const layout = out();
      const result = await build(`oci:${layout}:v1`, { app, sbom: 'none', appCache: 'off' });
      expect(result.sbom).toBeUndefined();
      expect(await exists(cacheDir)).toBe(false);
      expect((JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex).manifests).toHaveLength(1);
    } finally {
      process.env.OCITOOL_CACHE_DIR = before;
    }
    const layout = out();
    await expect(build(`oci:${layout}:v1`, { sbom: 'spdx' })).rejects.toMatchObject({ code: 'USAGE' });
    expect(await exists(layout)).toBe(false);
  }, 60_000);
});

describe('hostile lockfile content', () => {
  async function variant(edit: (lock: { packages: Record<string, Record<string, unknown>> }) => void): Promise<string> {
    const dir = join(work, `variant-${++n}`);
    await cp(app, dir, { recursive: true, verbatimSymlinks: true });
    const file = join(dir, 'package-lock.json');
    const lock = JSON.parse(await readFile(file, 'utf8')) as { packages: Record<string, Record<string, unknown>> };
    edit(lock);
    await writeFile(file, JSON.stringify(lock));
    return dir;
  }

  it('odd license values and integrity strings become NOASSERTION / no checksum; the installed package.json fills a missing license', async () => {
    const dir = await variant((lock) => {
      lock.packages['node_modules/express']!.license = { type: ['MIT'], evil: '\u0000' }; // not a string: package.json's (MIT)
      lock.packages['node_modules/express']!.integrity = 42;
      lock.packages['node_modules/depd']!.license = 'SEE LICENSE IN LICENSE';
      lock.packages['node_modules/depd']!.integrity = 'sha512-!!notbase64 md5-AAAA';
      lock.packages['node_modules/ms']!.license = 12;
      delete lock.packages['node_modules/debug']!.license;
    });
    const msJson = join(dir, 'node_modules/ms/package.json');
    await writeFile(msJson, JSON.stringify({ ...(JSON.parse(await readFile(msJson, 'utf8')) as object), license: { weird: [1, 2] } }));
    const layout = out();
    const r = await ocitool(['build', '--app', dir, '--tag', `oci:${layout}:v1`]);
    expect(r.code, r.stderr).toBe(0);
    const [found] = await referrersOf(`oci:${layout}:v1`);
    const { doc } = await sbomIn(layout, found!.digest);
    const by = (name: string, version?: string) => doc.packages.find((p) => p.name === name && (version === undefined || p.versionInfo === version))!;
    expect(by('express').licenseDeclared).toBe('MIT');
    expect(by('express').checksums).toBeUndefined();
    expect(by('depd').licenseDeclared).toBe('NOASSERTION');
    expect(by('depd').checksums).toBeUndefined();
    expect(by('ms', '2.1.3').licenseDeclared).toBe('NOASSERTION');
    expect(by('debug').licenseDeclared).toBe('MIT');
  }, 60_000);

  it('a production entry with a huge name is refused in one short line, quickly, with nothing written', async () => {
    const dir = await variant((lock) => {
      lock.packages['node_modules/express']!.name = 'x'.repeat(2_000_000);
    });
    const layout = out();
    const started = Date.now();
    const r = await ocitool(['build', '--app', dir, '--tag', `oci:${layout}:v1`]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/package-lock\.json: entry "node_modules\/express": the package name "x+…" is not an npm name/);
    expect(lines[0]!.length).toBeLessThan(500);
    expect(await exists(layout)).toBe(false);
  }, 30_000);
});
