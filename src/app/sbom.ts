/**
 * The SBOM of `build --app`: an SPDX 2.3 JSON document of the production packages that go into the
 * image (name, version, `pkg:npm/…` purl, declared license, the lockfile's integrity hashes) and of
 * the app itself, which DESCRIBES names and which DEPENDS_ON its dependencies as the lockfile links
 * them. The same inputs give the same bytes (sorted, no random namespace, the build's time).
 */
import { join } from 'node:path';
import { digestOf } from '../digest/digest.js';
import { parseJsonObject, quoted, readCappedSync, type LockedPackage } from './lockfile.js';

export const SPDX_JSON = 'application/spdx+json';

const NOASSERTION = 'NOASSERTION';
const EXPRESSION_MAX = 512;
const INSTALLED_PACKAGE_JSON_MAX = 4 * 1024 * 1024;

export interface SbomInput {
  /** The app: package.json's name, version and license. */
  app: { name: string; version?: string; license?: unknown };
  /** The production packages installed (as installedPackages gives them, licenses filled in). */
  packages: LockedPackage[];
  /** The names the app requires (the lockfile's root entry); default: every top-level package. */
  rootDependencies?: string[];
  /** Seconds since the epoch: the build's `created`. */
  created: number;
  /** ocitool's version, for `creators`. */
  toolVersion: string;
}

const ID_OPERAND = /^(?:DocumentRef-[A-Za-z0-9.-]+:)?(?:LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.-]*\+?)$/;

/**
 * A license as SPDX's licenseDeclared takes it: a license expression (ids joined by AND, OR, WITH,
 * parentheses) as given, operators upper-cased; an old-style `{ "type": "MIT" }` is read as its type;
 * anything else (absent, another type, "SEE LICENSE IN …", UNLICENSED, too long) is NOASSERTION.
 */
export function spdxLicense(v: unknown): string {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) v = (v as Record<string, unknown>).type;
  if (typeof v !== 'string' || v.length === 0 || v.length > EXPRESSION_MAX) return NOASSERTION;
  if (/[^\x21-\x7e\t ]/.test(v)) return NOASSERTION;
  const tokens = v.match(/\(|\)|[^\s()]+/g) ?? [];
  const out: string[] = [];
  let depth = 0;
  let wantOperand = true;
  let afterWith = false;
  for (const t of tokens) {
    const op = t.toUpperCase();
    if (wantOperand) {
      if (t === '(' && !afterWith) {
        depth++;
        out.push(t);
        continue;
      }
      if (!ID_OPERAND.test(t) || op === 'AND' || op === 'OR' || op === 'WITH' || op === 'UNLICENSED') return NOASSERTION;
      out.push(t);
      wantOperand = false;
      afterWith = false;
    } else if (t === ')') {
      if (--depth < 0) return NOASSERTION;
      out.push(t);
    } else if (op === 'AND' || op === 'OR' || op === 'WITH') {
      out.push(op);
      wantOperand = true;
      afterWith = op === 'WITH';
    } else return NOASSERTION;
  }
  if (wantOperand || depth !== 0) return NOASSERTION;
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
}

const ALGORITHMS: Record<string, [spdx: string, bytes: number]> = { sha1: ['SHA1', 20], sha256: ['SHA256', 32], sha384: ['SHA384', 48], sha512: ['SHA512', 64] };

/** The checksums of an SRI integrity string (`sha512-BASE64 …`) as SPDX writes them; unknown or damaged parts are left out. */
export function spdxChecksums(integrity: string | undefined): { algorithm: string; checksumValue: string }[] {
  const found = new Map<string, string>();
  for (const part of (integrity ?? '').split(/\s+/)) {
    const m = /^([a-z0-9]+)-([A-Za-z0-9+/]+={0,2})(?:\?.*)?$/.exec(part);
    const alg = m ? ALGORITHMS[m[1]!] : undefined;
    if (!m || !alg || found.has(alg[0])) continue;
    const bytes = Buffer.from(m[2]!, 'base64');
    if (bytes.length === alg[1]) found.set(alg[0], bytes.toString('hex'));
  }
  return [...found].sort(([a], [b]) => (a < b ? -1 : 1)).map(([algorithm, checksumValue]) => ({ algorithm, checksumValue }));
}

/** The package URL of an npm package: `pkg:npm/name@1.0.0`, `pkg:npm/%40scope/name@1.0.0`. */
export function npmPurl(name: string, version?: string): string {
  const lower = name.toLowerCase();
  const slash = lower.startsWith('@') ? lower.indexOf('/') : -1;
  const path = slash > 0 ? `${encodeURIComponent(lower.slice(0, slash))}/${encodeURIComponent(lower.slice(slash + 1))}` : encodeURIComponent(lower);
  return `pkg:npm/${path}${version !== undefined ? `@${encodeURIComponent(version)}` : ''}`;
}

const idPart = (s: string): string => s.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
const isoSeconds = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const byKey = <T>(key: (x: T) => string) => (a: T, b: T): number => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** A folder whose node_modules holds packages: what it holds, by name, and the folder it sits in. */
interface Folder {
  up: Folder | undefined;
  children: Map<string, string>;
}

/**
 * Resolves names as Node does from each installed package's folder (and the app's, ''): the nearest
 * node_modules up the folder chain that holds the name. Folders link to the folder above them, so a
 * name costs one map lookup per level, never a path's length.
 */
class Resolver {
  private readonly folders = new Map<string, Folder>();

  constructor(paths: Iterable<string>) {
    for (const path of paths) {
      const i = path.lastIndexOf('node_modules/');
      this.folder(i === 0 ? '' : path.slice(0, i - 1)).children.set(path.slice(i + 'node_modules/'.length), path);
    }
  }

  private folder(dir: string): Folder {
    let f = this.folders.get(dir);
    if (!f) {
      const i = dir.lastIndexOf('/node_modules/');
      f = { up: dir === '' ? undefined : this.folder(i < 0 ? '' : dir.slice(0, i)), children: new Map() };
      this.folders.set(dir, f);
    }
    return f;
  }

  /** Resolves names from the package at `from` ('' for the app): the installed path of each, or undefined. */
  from(from: string): (name: string) => string | undefined {
    const start = this.folder(from);
    return (name) => {
      for (let f: Folder | undefined = start; f; f = f.up) {
        const hit = f.children.get(name);
        if (hit !== undefined) return hit;
      }
      return undefined;
    };
  }
}

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed: false;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  checksums?: { algorithm: string; checksumValue: string }[];
  externalRefs: { referenceCategory: string; referenceType: string; referenceLocator: string }[];
  primaryPackagePurpose: string;
}

function spdxPackage(id: string, name: string, version: string | undefined, license: unknown, integrity: string | undefined, purpose: string): SpdxPackage {
  const checksums = spdxChecksums(integrity);
  return {
    SPDXID: id,
    name,
    ...(version !== undefined ? { versionInfo: version } : {}),
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: spdxLicense(license),
    copyrightText: NOASSERTION,
    ...(checksums.length ? { checksums } : {}),
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: npmPurl(name, version) }],
    primaryPackagePurpose: purpose,
  };
}

/** The SPDX 2.3 JSON document (its bytes) of an app and the production packages in its image. */
export function spdxDocument(input: SbomInput): Buffer {
  const ROOT = 'SPDXRef-Package-app';
  // One SPDX package per name@version (the lockfile may install one several times), in purl order.
  const byPurl = new Map<string, LockedPackage>();
  for (const p of [...input.packages].sort(byKey((x) => x.path))) {
    const purl = npmPurl(p.name, p.version);
    if (!byPurl.has(purl)) byPurl.set(purl, p);
  }
  const idOfPurl = new Map<string, string>();
  const used = new Set([ROOT]);
  const packages: SpdxPackage[] = [spdxPackage(ROOT, input.app.name, input.app.version, input.app.license, undefined, 'APPLICATION')];
  for (const purl of [...byPurl.keys()].sort()) {
    const p = byPurl.get(purl)!;
    const base = `SPDXRef-Package-npm-${idPart(p.name)}${p.version !== undefined ? `-${idPart(p.version)}` : ''}`;
    let id = base;
    for (let n = 2; used.has(id); n++) id = `${base}-${n}`;
    used.add(id);
    idOfPurl.set(purl, id);
    packages.push(spdxPackage(id, p.name, p.version, p.license, p.integrity, 'LIBRARY'));
  }

  const installed = new Map(input.packages.map((p) => [p.path, p]));
  const resolver = new Resolver(installed.keys());
  const idOfPath = (path: string): string => {
    const p = installed.get(path)!;
    return idOfPurl.get(npmPurl(p.name, p.version))!;
  };
  // from → its targets (a Set each: no edge twice, none to itself).
  const out = new Map<string, Set<string>>();
  const depends = (from: string, to: string): void => {
    if (from === to) return;
    let targets = out.get(from);
    if (!targets) out.set(from, (targets = new Set()));
    targets.add(to);
  };
  const rootNames = input.rootDependencies ?? input.packages.filter((p) => !p.path.slice('node_modules/'.length).includes('/node_modules/')).map((p) => p.name);
  const fromApp = resolver.from('');
  for (const n of rootNames) {
    const to = fromApp(n);
    if (to !== undefined) depends(ROOT, idOfPath(to));
  }
  for (const p of input.packages) {
    if (!p.dependencies) continue;
    const from = idOfPath(p.path);
    const resolve = resolver.from(p.path);
    for (const n of p.dependencies) {
      const to = resolve(n);
      if (to !== undefined) depends(from, idOfPath(to));
    }
  }
  // Whatever the lockfile links to nothing the app reaches still hangs off the app.
  const reached = new Set([ROOT]);
  for (const queue = [ROOT]; queue.length; ) for (const to of out.get(queue.pop()!) ?? []) if (!reached.has(to) && reached.add(to)) queue.push(to);
  for (const id of idOfPurl.values()) if (!reached.has(id)) depends(ROOT, id);
  const edges = [...out].flatMap(([from, targets]) => [...targets].map((to): [string, string] => [from, to]));
  edges.sort(([a, b], [c, d]) => (a < c ? -1 : a > c ? 1 : b < d ? -1 : b > d ? 1 : 0));

  const relationships = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: ROOT },
    ...edges.map(([from, to]) => ({ spdxElementId: from, relationshipType: 'DEPENDS_ON', relatedSpdxElement: to })),
  ];
  const name = `${input.app.name}${input.app.version !== undefined ? `-${input.app.version}` : ''}`;
  const doc = (documentNamespace: string) => ({
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name,
    documentNamespace,
    creationInfo: { created: isoSeconds(input.created), creators: [`Tool: ocitool-${input.toolVersion}`] },
    packages,
    relationships,
  });
  // Unique per content, the same for the same content: the hash of the document without it.
  const hash = digestOf(JSON.stringify(doc(''))).slice('sha256:'.length);
  return Buffer.from(`${JSON.stringify(doc(`https://spdx.org/spdxdocs/${encodeURIComponent(name)}-${hash}`), null, 2)}\n`);
}

/**
 * The packages as their installed package.json describes them, which is what the image holds: the
 * license it declares where the lockfile names none, and its version where it names another than
 * the lockfile (node_modules not as `npm ci` left it), then without the lockfile's integrity, the
 * hash of another tarball; `warn` is told once, naming the first. A package.json that is missing,
 * odd or unreadable changes nothing (the SBOM says NOASSERTION for a license it lacks).
 */
export async function withInstalledLicenses(dir: string, packages: LockedPackage[], opts: { warn?: (message: string) => void } = {}): Promise<LockedPackage[]> {
  const out: LockedPackage[] = [];
  let changed: { path: string; locked?: string; installed: string; count: number } | undefined;
  for (const p of packages) {
    const file = join(dir, p.path, 'package.json');
    let installed: Record<string, unknown> = {};
    try {
      installed = parseJsonObject(readCappedSync(file, INSTALLED_PACKAGE_JSON_MAX, 'package.json', { noFollow: true }), file);
    } catch {
      // informative only
    }
    let q = p;
    const text = p.license === undefined ? spdxLicense(installed.license) : NOASSERTION;
    if (text !== NOASSERTION) q = { ...q, license: text };
    const v = installed.version;
    if (typeof v === 'string' && v !== '' && v.length <= 256 && !/[\x00-\x20\x7f]/.test(v) && v !== p.version) {
      const { integrity: _i, ...rest } = q;
      q = { ...rest, version: v };
      changed = changed ? { ...changed, count: changed.count + 1 } : { path: p.path, ...(p.version !== undefined ? { locked: p.version } : {}), installed: v, count: 1 };
    }
    out.push(q);
  }
  if (changed) {
    const more = changed.count > 1 ? ` (and ${changed.count - 1} more)` : '';
    opts.warn?.(`--app ${dir}: ${quoted(changed.path)} is installed at version ${changed.installed}, the lockfile says ${changed.locked ?? 'none'}${more}; the SBOM lists what is installed (run npm ci to match the lockfile)`);
  }
  return out;
}
