import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { productionPackages, type LockedPackage } from './lockfile.js';
import { npmPurl, spdxChecksums, spdxDocument, spdxLicense, withInstalledLicenses, type SbomInput } from './sbom.js';

interface Doc {
  spdxVersion: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: { SPDXID: string; name: string; versionInfo?: string; licenseDeclared: string; checksums?: { algorithm: string; checksumValue: string }[]; externalRefs: { referenceLocator: string }[] }[];
  relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
}

const pkg = (path: string, version: string, more: Partial<LockedPackage> = {}): LockedPackage => ({ path, name: path.slice(path.lastIndexOf('node_modules/') + 13), version, optional: false, ...more });
const input = (packages: LockedPackage[], more: Partial<SbomInput> = {}): SbomInput => ({ app: { name: 'app', version: '1.0.0', license: 'MIT' }, packages, created: 1_700_000_000, toolVersion: '9.9.9', ...more });
const parse = (b: Buffer): Doc => JSON.parse(b.toString()) as Doc;

describe('spdxLicense', () => {
  it.each([
    ['MIT', 'MIT'],
    ['(MIT OR Apache-2.0)', '(MIT OR Apache-2.0)'],
    ['mit or apache-2.0', 'mit OR apache-2.0'],
    ['GPL-2.0-only WITH Classpath-exception-2.0', 'GPL-2.0-only WITH Classpath-exception-2.0'],
    ['LicenseRef-Custom', 'LicenseRef-Custom'],
    [{ type: 'BSD-3-Clause' }, 'BSD-3-Clause'],
  ])('keeps the expression %j', (v, want) => expect(spdxLicense(v)).toBe(want));
  it.each([[undefined], [''], [42], [null], [['MIT']], [{ type: 7 }], ['SEE LICENSE IN LICENSE.txt'], ['UNLICENSED'], ['MIT OR'], ['(MIT'], ['MIT)'], ['MIT\nAND ISC'], ['M'.repeat(10_000)], ['MIT;rm -rf']])(
    'says NOASSERTION for %j',
    (v) => expect(spdxLicense(v)).toBe('NOASSERTION'),
  );
});

describe('spdxChecksums', () => {
  it('turns SRI hashes into SPDX algorithms and hex, dropping unknown or damaged ones', () => {
    const sha512 = Buffer.alloc(64, 0xab).toString('base64');
    const sha1 = Buffer.alloc(20, 0x01).toString('base64');
    expect(spdxChecksums(`sha512-${sha512} sha1-${sha1} md5-AAAA sha256-short== sha512-${Buffer.alloc(64, 0xcd).toString('base64')}`)).toEqual([
      { algorithm: 'SHA1', checksumValue: '01'.repeat(20) },
      { algorithm: 'SHA512', checksumValue: 'ab'.repeat(64) },
    ]);
    expect(spdxChecksums(undefined)).toEqual([]);
    expect(spdxChecksums('sha512-!!!')).toEqual([]);
  });
});

describe('npmPurl', () => {
  it('encodes scopes and versions as purl requires', () => {
    expect(npmPurl('@Scope/Name', '1.2.3')).toBe('pkg:npm/%40scope/name@1.2.3');
    expect(npmPurl('express', '4.21.2')).toBe('pkg:npm/express@4.21.2');
    expect(npmPurl('a', '1.0.0+build.1')).toBe('pkg:npm/a@1.0.0%2Bbuild.1');
    expect(npmPurl('a')).toBe('pkg:npm/a');
    expect(npmPurl('@s/a/b c', '1')).toBe('pkg:npm/%40s/a%2Fb%20c@1');
  });
});

describe('spdxDocument', () => {
  const packages = [
    pkg('node_modules/b', '2.0.0', { license: 'ISC', dependencies: ['a'] }),
    pkg('node_modules/a', '1.0.0', { license: 'MIT', integrity: `sha512-${Buffer.alloc(64, 1).toString('base64')}` }),
    pkg('node_modules/b/node_modules/a', '0.5.0', { dependencies: ['@s/c'] }),
    pkg('node_modules/@s/c', '3.0.0'),
    pkg('node_modules/z/node_modules/a', '1.0.0'), // a second install of a@1.0.0: one package
  ];

  it('describes the app, lists each name@version once with purl, license, checksum; links as Node resolves', () => {
    const doc = parse(spdxDocument(input(packages, { rootDependencies: ['a', 'b', 'missing-dev'] })));
    expect(doc.spdxVersion).toBe('SPDX-2.3');
    expect(doc.creationInfo).toEqual({ created: '2023-11-14T22:13:20Z', creators: ['Tool: ocitool-9.9.9'] });
    expect(doc.packages.map((p) => [p.name, p.versionInfo, p.externalRefs[0]!.referenceLocator, p.licenseDeclared])).toEqual([
      ['app', '1.0.0', 'pkg:npm/app@1.0.0', 'MIT'],
      ['@s/c', '3.0.0', 'pkg:npm/%40s/c@3.0.0', 'NOASSERTION'],
      ['a', '0.5.0', 'pkg:npm/a@0.5.0', 'NOASSERTION'],
      ['a', '1.0.0', 'pkg:npm/a@1.0.0', 'MIT'],
      ['b', '2.0.0', 'pkg:npm/b@2.0.0', 'ISC'],
    ]);
    expect(doc.packages[3]!.checksums).toEqual([{ algorithm: 'SHA512', checksumValue: '01'.repeat(64) }]);
    const rel = doc.relationships.map((r) => `${r.spdxElementId} ${r.relationshipType} ${r.relatedSpdxElement}`);
    expect(rel).toEqual([
      'SPDXRef-DOCUMENT DESCRIBES SPDXRef-Package-app',
      'SPDXRef-Package-app DEPENDS_ON SPDXRef-Package-npm-a-1.0.0',
      'SPDXRef-Package-app DEPENDS_ON SPDXRef-Package-npm-b-2.0.0',
      // b's own a (nested) is 0.5.0; that one's @s/c resolves up to the top level.
      'SPDXRef-Package-npm-a-0.5.0 DEPENDS_ON SPDXRef-Package-npm-s-c-3.0.0',
      'SPDXRef-Package-npm-b-2.0.0 DEPENDS_ON SPDXRef-Package-npm-a-0.5.0',
    ]);
  });

  it('is the same bytes for the same inputs in any order, and a namespace that follows the content', () => {
    const a = spdxDocument(input(packages));
    expect(spdxDocument(input([...packages].reverse())).equals(a)).toBe(true);
    const other = parse(spdxDocument(input(packages, { created: 1 })));
    expect(other.documentNamespace).not.toBe(parse(a).documentNamespace);
    expect(parse(a).documentNamespace).toMatch(/^https:\/\/spdx\.org\/spdxdocs\/app-1\.0\.0-[0-9a-f]{64}$/);
  });

  it('hangs every package off the app when the lockfile names no root dependencies', () => {
    const doc = parse(spdxDocument(input(packages)));
    const fromApp = doc.relationships.filter((r) => r.spdxElementId === 'SPDXRef-Package-app').map((r) => r.relatedSpdxElement);
    expect(fromApp).toEqual(['SPDXRef-Package-npm-a-1.0.0', 'SPDXRef-Package-npm-b-2.0.0', 'SPDXRef-Package-npm-s-c-3.0.0']);
  });

  it('gives distinct SPDX ids to names that look alike once made id-safe', () => {
    const doc = parse(spdxDocument(input([pkg('node_modules/@a/b', '1'), pkg('node_modules/a-b', '1')])));
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
  });

  it('carries hostile lockfile content safely: odd licenses, integrity and names end as NOASSERTION or escaped JSON', () => {
    const doc = parse(
      spdxDocument(input([pkg('node_modules/x', '1.0.0', { name: 'x"}\u2028', license: '<script>', integrity: 'sha512-' + 'A'.repeat(5000) })], { app: { name: 'app', license: { weird: true } } })),
    );
    expect(doc.packages[0]!.licenseDeclared).toBe('NOASSERTION');
    expect(doc.packages[1]!.name).toBe('x"}\u2028');
    expect(doc.packages[1]!.licenseDeclared).toBe('NOASSERTION');
    expect(doc.packages[1]!.checksums).toBeUndefined();
    expect(doc.packages[1]!.externalRefs[0]!.referenceLocator).toBe('pkg:npm/x%22%7D%E2%80%A8@1.0.0');
  });
});

describe('spdxDocument on a hostile graph', () => {
  /** The lockfile's production packages (its caps checked) with their SBOM, timed. */
  const timed = (packages: Record<string, unknown>): { doc: Doc; ms: number } => {
    const started = Date.now();
    const lock = productionPackages({ lockfileVersion: 3, packages }, 'package-lock.json');
    const root = (packages[''] as { dependencies?: Record<string, string> } | undefined)?.dependencies;
    const doc = parse(spdxDocument(input(lock, root ? { rootDependencies: Object.keys(root) } : {})));
    return { doc, ms: Date.now() - started };
  };

  it('an app that depends on 50,000 packages, one of which depends on all of them: linear, each link once', () => {
    const names = Array.from({ length: 50_000 }, (_, i) => `p${i}`);
    const deps = Object.fromEntries(names.map((n) => [n, '1.0.0']));
    const packages: Record<string, unknown> = { '': { name: 'app', dependencies: deps } };
    for (const n of names) packages[`node_modules/${n}`] = { version: '1.0.0', ...(n === 'p0' ? { dependencies: deps } : {}) };
    const { doc, ms } = timed(packages);
    expect(doc.packages).toHaveLength(50_001);
    const from = (id: string): number => doc.relationships.filter((r) => r.spdxElementId === id).length;
    expect([from('SPDXRef-Package-app'), from('SPDXRef-Package-npm-p0-1.0.0')]).toEqual([50_000, 49_999]);
    expect(ms).toBeLessThan(10_000);
  }, 30_000);

  it('names that resolve nowhere from packages nested 63 deep (paths of 4 KiB): each folder looked up once', () => {
    let chain = '';
    const packages: Record<string, unknown> = {};
    for (let d = 0; d < 63; d++) {
      chain += `${chain ? '/' : ''}node_modules/${`n${d}-`.padEnd(50, 'x')}`;
      packages[chain] = { version: '1.0.0' };
    }
    expect(chain.length).toBeLessThan(4096 - 30);
    const missing = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`missing-${i}`, '1']));
    for (let i = 0; i < 9_000; i++) packages[`${chain}/node_modules/leaf${i}`] = { version: '1.0.0', dependencies: missing };
    const { doc, ms } = timed(packages);
    expect(doc.packages).toHaveLength(63 + 9_000 + 1);
    expect(ms).toBeLessThan(10_000);
  }, 60_000);
});

describe('withInstalledLicenses', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocitool-sbom-'));
    const put = async (name: string, body: string): Promise<void> => {
      await mkdir(join(dir, 'node_modules', name), { recursive: true });
      await writeFile(join(dir, 'node_modules', name, 'package.json'), body);
    };
    await put('a', JSON.stringify({ license: 'Apache-2.0' }));
    await put('b', JSON.stringify({ license: { type: 'MIT' } }));
    await put('c', '{ not json');
    await put('d', JSON.stringify({ license: ['MIT'] }));
    await mkdir(join(dir, 'node_modules', 'e'), { recursive: true });
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("fills in the installed package.json's license where the lockfile has none; odd or missing ones add nothing", async () => {
    const got = await withInstalledLicenses(dir, ['a', 'b', 'c', 'd', 'e'].map((n) => pkg(`node_modules/${n}`, '1')).concat(pkg('node_modules/a', '1', { license: 'ISC' })));
    expect(got.map((p) => p.license)).toEqual(['Apache-2.0', 'MIT', undefined, undefined, undefined, 'ISC']);
  });

  it('lists the version installed where it is not the lockfile\'s (then without the lockfile\'s integrity), and says so once', async () => {
    await mkdir(join(dir, 'node_modules', 'f'), { recursive: true });
    await writeFile(join(dir, 'node_modules', 'f', 'package.json'), JSON.stringify({ name: 'f', version: '9.9.9', license: 'MIT' }));
    await writeFile(join(dir, 'node_modules', 'e', 'package.json'), JSON.stringify({ name: 'e', version: '1' }));
    const warnings: string[] = [];
    const sri = `sha512-${Buffer.alloc(64, 1).toString('base64')}`;
    const got = await withInstalledLicenses(dir, [pkg('node_modules/f', '1.0.0', { integrity: sri }), pkg('node_modules/e', '1', { integrity: sri })], { warn: (m) => warnings.push(m) });
    expect(got.map((p) => [p.version, p.integrity])).toEqual([['9.9.9', undefined], ['1', sri]]);
    expect(warnings).toEqual([`--app ${dir}: "node_modules/f" is installed at version 9.9.9, the lockfile says 1.0.0; the SBOM lists what is installed (run npm ci to match the lockfile)`]);
    const doc = parse(spdxDocument(input(got)));
    expect(doc.packages.find((p) => p.name === 'f')).toMatchObject({ versionInfo: '9.9.9', externalRefs: [{ referenceLocator: 'pkg:npm/f@9.9.9' }] });
    expect(doc.packages.find((p) => p.name === 'f')!.checksums).toBeUndefined();
  });

  it('takes nothing from a package.json that is a symlink (to a file outside the app) or over the 4 MiB cap', async () => {
    const outside = join(dir, 'outside.json');
    await writeFile(outside, JSON.stringify({ version: '6.6.6', license: 'WTFPL' }));
    for (const n of ['link', 'huge']) await mkdir(join(dir, 'node_modules', n), { recursive: true });
    await symlink(outside, join(dir, 'node_modules/link/package.json'));
    await writeFile(join(dir, 'node_modules/huge/package.json'), JSON.stringify({ version: '7.7.7', license: 'MIT', pad: ' '.repeat(4 * 1024 * 1024) }));
    const warnings: string[] = [];
    const got = await withInstalledLicenses(dir, ['link', 'huge'].map((n) => pkg(`node_modules/${n}`, '1')), { warn: (m) => warnings.push(m) });
    expect(got.map((p) => [p.version, p.license])).toEqual([['1', undefined], ['1', undefined]]);
    expect(warnings).toEqual([]);
  });
});
