/**
 * skopeo-style transport references (`oci:DIR:TAG`, `docker://NAME`, …), parsed the way
 * containers/image parses them on Linux, with a digest form added for OCI layouts.
 */
import { resolve as pathResolve } from 'node:path';
import { parseDigest } from '../digest/digest.js';
import { OciToolError } from '../util/errors.js';
import { formatDockerReference, parseDockerName, quote, type DockerReference } from './docker-name.js';

export type ImageReference =
  | { transport: 'oci'; dir: string; tag?: string; digest?: string }
  | { transport: 'oci-archive'; file: string; tag?: string }
  | { transport: 'docker'; ref: DockerReference }
  | { transport: 'docker-archive'; file: string; ref?: DockerReference }
  | { transport: 'dir'; dir: string };

export type TransportName = ImageReference['transport'];

const KNOWN_TRANSPORTS = 'oci:DIR[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker://NAME[:TAG|@DIGEST], docker-archive:FILE[:NAME[:TAG]], dir:DIR';
const TRANSPORT_NAMES: readonly TransportName[] = ['oci', 'oci-archive', 'docker', 'docker-archive', 'dir'];

/** OCI `org.opencontainers.image.ref.name` grammar (image-spec image-layout.md). */
const REF_COMPONENT = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const REF_NAME_RE = new RegExp(`^${REF_COMPONENT}(?:/${REF_COMPONENT})*$`);

/** `alg:encoded` by the OCI digest grammar. */
const DIGEST_SHAPE_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const REGISTERED_ALGORITHMS: ReadonlySet<string> = new Set(['sha256', 'sha384', 'sha512', 'blake3']);


function fail(input: string, why: string): never {
  throw new OciToolError('INVALID_REFERENCE', `invalid reference ${quote(input)}: ${why}`);
}

/** Whether `s` is a valid `org.opencontainers.image.ref.name` value (as an `oci:` tag must be). */
export function isValidRefName(s: string): boolean {
  return REF_NAME_RE.test(s);
}

/**
 * Parses `TRANSPORT:DETAILS`:
 * - `oci:DIR`, `oci:DIR:TAG`, `oci:DIR@DIGEST` (also `oci:DIR:TAG@DIGEST`): the directory is everything
 *   before the first ':'; a trailing `@alg:hex` is a digest;
 * - `oci-archive:FILE[:TAG]`;
 * - `docker://NAME[:TAG][@DIGEST]` (normalised as docker does);
 * - `docker-archive:FILE[:NAME[:TAG]]` (the name gets tag `latest` when it has none; no digests);
 * - `dir:DIR` (skopeo's directory of manifest.json and blobs; read-only here).
 *
 * @throws OciToolError with code `INVALID_REFERENCE`.
 */
export function parseReference(s: string): ImageReference {
  const colon = s.indexOf(':');
  if (colon <= 0) fail(s, `no transport given; known transports: ${KNOWN_TRANSPORTS}`);
  const transport = s.slice(0, colon);
  const rest = s.slice(colon + 1);
  switch (transport) {
    case 'oci':
      return parseOci(s, rest);
    case 'oci-archive':
      return parseOciArchive(s, rest);
    case 'docker':
      if (!rest.startsWith('//') || rest.startsWith('///')) fail(s, `docker references are written docker://NAME${tryInstead(`docker://${rest.replace(/^\/+/, '')}`)}`);
      return { transport: 'docker', ref: parseDockerName(rest.slice(2), s) };
    case 'docker-archive':
      return parseDockerArchive(s, rest);
    case 'dir':
      if (rest === '') fail(s, 'empty directory');
      return { transport: 'dir', dir: rest };
    default:
      return unknownTransport(s);
  }
}

/** ` (try "…")` when `candidate` parses, else nothing: a hint never suggests what fails in turn. */
function tryInstead(candidate: string): string {
  try {
    parseReference(candidate);
    return ` (try ${quote(candidate)})`;
  } catch {
    return '';
  }
}

/**
 * The usage error for `SCHEME:REST` whose scheme is no transport: the known transports, and the
 * reference meant when that is clear (a misspelt transport, or an http(s):// URL of a registry).
 *
 * @throws OciToolError with code `INVALID_REFERENCE`, always.
 */
export function unknownTransport(input: string): never {
  const colon = input.indexOf(':');
  const scheme = input.slice(0, colon);
  const rest = input.slice(colon + 1);
  const meant = /^https?$/i.test(scheme) ? 'docker' : closestTransport(scheme.toLowerCase());
  const hint = meant === undefined ? '' : tryInstead(meant === 'docker' ? `docker://${rest.replace(/^\/+/, '')}` : `${meant}:${rest}`);
  return fail(input, `unknown transport ${quote(scheme)}${hint}; known transports: ${KNOWN_TRANSPORTS}`);
}

/** The transport name a typo away from `name` (one edit, two for names of 5 letters or more), if any. */
function closestTransport(name: string): TransportName | undefined {
  let best: { t: TransportName; d: number } | undefined;
  for (const t of TRANSPORT_NAMES) {
    const d = editDistance(name, t);
    if (d <= (name.length >= 5 ? 2 : 1) && (!best || d < best.d)) best = { t, d };
  }
  return best?.t;
}

/** Levenshtein distance (short strings only: transport names). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * Splits a trailing `@DIGEST` off `rest` when the text after the last '@' is meant as a digest: it fits
 * the OCI digest grammar and either names a registered algorithm or is at least 32 hex characters.
 * Such a suffix must then be a valid digest.
 */
function splitDigest(input: string, rest: string): { rest: string; digest?: string } {
  const at = rest.lastIndexOf('@');
  if (at < 0) return { rest };
  const candidate = rest.slice(at + 1);
  const m = DIGEST_SHAPE_RE.exec(candidate);
  if (!m || !(REGISTERED_ALGORITHMS.has(m[1] ?? '') || /^[0-9a-fA-F]{32,}$/.test(m[2] ?? ''))) return { rest };
  try {
    parseDigest(candidate);
  } catch (err) {
    fail(input, err instanceof Error ? err.message : `invalid digest ${quote(candidate)}`);
  }
  return { rest: rest.slice(0, at), digest: candidate };
}

/** Splits `PATH[:TAG]` at the first ':' and checks both parts. */
function splitPathAndTag(input: string, rest: string, what: string): { path: string; tag?: string } {
  const colon = rest.indexOf(':');
  const path = colon < 0 ? rest : rest.slice(0, colon);
  if (path === '') fail(input, `empty ${what}`);
  if (colon < 0) return { path };
  const tag = rest.slice(colon + 1);
  if (tag === '') fail(input, 'empty tag');
  if (!REF_NAME_RE.test(tag)) {
    fail(input, `invalid tag ${quote(tag)}: must be components of [A-Za-z0-9] joined by one of - . _ : @ + or --, separated by '/'`);
  }
  return { path, tag };
}

function parseOci(input: string, rest: string): ImageReference {
  const d = splitDigest(input, rest);
  const { path, tag } = splitPathAndTag(input, d.rest, 'directory');
  const ref: ImageReference = { transport: 'oci', dir: path };
  if (tag !== undefined) ref.tag = tag;
  if (d.digest !== undefined) ref.digest = d.digest;
  return ref;
}

function parseOciArchive(input: string, rest: string): ImageReference {
  if (splitDigest(input, rest).digest !== undefined) fail(input, 'oci-archive references cannot carry a digest');
  const { path, tag } = splitPathAndTag(input, rest, 'file name');
  return tag === undefined ? { transport: 'oci-archive', file: path } : { transport: 'oci-archive', file: path, tag };
}

function parseDockerArchive(input: string, rest: string): ImageReference {
  const colon = rest.indexOf(':');
  const file = colon < 0 ? rest : rest.slice(0, colon);
  if (file === '') fail(input, 'empty file name');
  if (colon < 0) return { transport: 'docker-archive', file };
  const name = rest.slice(colon + 1);
  if (name.startsWith('@')) fail(input, 'docker-archive source indexes (FILE:@N) are not supported; give NAME:TAG');
  const ref = parseDockerName(name, input);
  if (ref.digest !== undefined) fail(input, 'docker-archive references cannot carry a digest; give NAME:TAG');
  return { transport: 'docker-archive', file, ref };
}

/** The string form of a reference; `parseReference` reads it back to an equal reference. */
export function formatReference(r: ImageReference): string {
  switch (r.transport) {
    case 'oci':
      return `oci:${r.dir}${r.tag === undefined ? '' : `:${r.tag}`}${r.digest === undefined ? '' : `@${r.digest}`}`;
    case 'oci-archive':
      return `oci-archive:${r.file}${r.tag === undefined ? '' : `:${r.tag}`}`;
    case 'docker':
      return `docker://${formatDockerReference(r.ref)}`;
    case 'docker-archive':
      return `docker-archive:${r.file}${r.ref === undefined ? '' : `:${formatDockerReference(r.ref)}`}`;
    case 'dir':
      return `dir:${r.dir}`;
  }
}

/** The same reference with its local path (layout, archive, directory) made absolute. */
export function absoluteReference(r: ImageReference, cwd: string = process.cwd()): ImageReference {
  switch (r.transport) {
    case 'oci':
    case 'dir':
      return { ...r, dir: pathResolve(cwd, r.dir) };
    case 'oci-archive':
    case 'docker-archive':
      return { ...r, file: pathResolve(cwd, r.file) };
    case 'docker':
      return r;
  }
}
