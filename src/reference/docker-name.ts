/**
 * Docker image names: parsing and normalisation with the same accept/reject behaviour as
 * distribution/reference's `ParseNormalizedNamed` (see SPEC-NOTES section 6), with two deliberate
 * differences: a name carrying both a tag and a digest keeps both (the tag is for display, the digest
 * is what gets resolved), and digests are validated by the OCI digest grammar (sha256/sha512 must be
 * lowercase hex of the right length; other algorithms that fit the grammar pass).
 */
import { parseDigest } from '../digest/digest.js';
import { OciToolError } from '../util/errors.js';

/** A normalised docker reference: `domain/path[:tag][@digest]`. */
export interface DockerReference {
  /** Registry domain, possibly with a port: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path inside the registry: `library/ubuntu`, `user/repo`. */
  path: string;
  tag?: string;
  digest?: string;
}

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
const OFFICIAL_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';
/** Longest allowed repository path; the domain is not counted (distribution/reference v0.6.0+). */
const PATH_MAX = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Whether `s` is a valid tag (what a registry's tag list may hold; anything else is refused there). */
export const isValidTag = (s: string): boolean => TAG_RE.test(s);

/** Whether `s` is a valid repository path (`a/b-c/d`), as a registry's catalog may list them. */
export const isValidRepositoryPath = (s: string): boolean => s.length <= 255 && s.split('/').every((c) => PATH_COMPONENT_RE.test(c));
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/**
 * A reference quoted for a message, with a `USER:PASSWORD@` before the host replaced by `***@`: a
 * password typed into a reference never reaches a message.
 */
export const quote = (s: string): string => {
  const m = /^(docker:(?:\/\/)?)?(.*)$/s.exec(s)!;
  const prefix = m[1] ?? '';
  // Only a docker name (bare or docker:) can hold a USER:PASSWORD@; layout and archive paths are paths.
  if (prefix === '' && /^(?:oci:|oci-archive:|docker-archive:|dir:|[./~])/.test(s)) return JSON.stringify(s);
  const end = credentialsEnd(m[2]!);
  return JSON.stringify(end === undefined ? s : `${prefix}***@${m[2]!.slice(end + 1)}`);
};

/** A digest at the end of a name, as it follows the one '@' a valid name may hold. */
const FINAL_DIGEST_RE = /^(?:sha256|sha384|sha512):[A-Fa-f0-9]+$/;

/**
 * Where a `USER:PASSWORD@` typed before a docker name ends (the index of its '@'), or undefined when
 * there is none. A valid name holds '@' only right before a final digest, so a ':' before the first
 * '@' with anything but a digest after that '@' is credentials; the password itself may hold '/', ':'
 * or '@', so the credentials run to the last '@' that does not start the final digest.
 */
export function credentialsEnd(name: string): number | undefined {
  const first = name.indexOf('@');
  if (first < 0 || name.startsWith('[') || !name.slice(0, first).includes(':')) return undefined;
  let end = name.lastIndexOf('@');
  if (FINAL_DIGEST_RE.test(name.slice(end + 1))) {
    if (end === first) return undefined; // the only '@' is the digest's
    end = name.lastIndexOf('@', end - 1);
  }
  return end;
}

/**
 * Parses a docker image name (`ubuntu`, `user/repo:tag`, `host:5000/a/b@sha256:…`) into its normalised
 * form: `docker.io` when no domain is given, `library/` before a one-component path on `docker.io`,
 * `index.docker.io` rewritten to `docker.io`, and tag `latest` when neither tag nor digest is given.
 * A tag and a digest given together are both kept.
 *
 * @param context the text to quote in error messages (defaults to `s`); callers that parse a name
 *   embedded in a longer reference (`docker://NAME`) pass the whole reference.
 * @throws OciToolError with code `INVALID_REFERENCE`.
 */
export function parseDockerName(s: string, context: string = s): DockerReference {
  const parsed = parseNormalized(s);
  if (typeof parsed === 'string') {
    throw new OciToolError('INVALID_REFERENCE', `invalid reference ${quote(context)}: ${parsed}`);
  }
  return parsed;
}

/** The normalised reference, or the reason it does not parse. */
function parseNormalized(s: string): DockerReference | string {
  if (s === '') return 'repository name must have at least one component';
  if (credentialsEnd(s) !== undefined) return 'credentials do not go in a reference: give them with --creds (or a docker config file)';
  if (IDENTIFIER_RE.test(s)) return 'a 64-character hexadecimal string is an image ID, not a repository name';

  // Names and tags never contain '@', so the first '@' starts the digest.
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // The tag follows the last ':' unless a '/' comes after it (then the ':' belongs to a domain port).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.includes('/', colon)) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }

  const name = parseName(rest);
  if (typeof name === 'string') {
    // Like distribution/reference: when the name fails but its lowercased form parses, the fault is
    // uppercase in the repository name (e.g. `Foo_bar/baz`, where `Foo_bar` is no valid domain).
    const lower = rest.toLowerCase();
    return lower !== rest && typeof parseName(lower) !== 'string' ? 'repository name must be lowercase' : name;
  }
  if (tag !== undefined && !TAG_RE.test(tag)) {
    return `invalid tag ${quote(tag)}: up to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'`;
  }
  if (digest !== undefined) {
    try {
      parseDigest(digest);
    } catch (err) {
      return err instanceof Error ? err.message : `invalid digest ${quote(digest)}`;
    }
  }

  const ref: DockerReference = name;
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/**
 * Whether a name's first component names a registry by docker's rule (it holds a '.' or a ':', or is
 * `localhost`) and is a valid domain: `ghcr.io`, `localhost:5000`, `[::1]:5000`; not `.`, `..` or `out`.
 */
export function isRegistryDomain(first: string): boolean {
  return (first === 'localhost' || /[.:]/.test(first)) && DOMAIN_RE.test(first);
}

/** Splits and validates `[domain/]path` (no tag or digest), normalising the domain and path. */
function parseName(name: string): DockerReference | string {
  if (name === '') return 'repository name must have at least one component';
  let domain: string;
  let path: string;
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  if (slash >= 0 && (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first)) {
    domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
    path = name.slice(slash + 1);
  } else {
    domain = DEFAULT_DOMAIN;
    path = name;
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;

  if (path.toLowerCase() !== path) return 'repository name must be lowercase';
  if (!DOMAIN_RE.test(domain)) return `invalid registry domain ${quote(domain)}`;
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      return component === ''
        ? 'repository name has an empty path component'
        : `invalid repository name component ${quote(component)}`;
    }
  }
  if (path.length > PATH_MAX) return `repository name must not be more than ${PATH_MAX} characters`;
  return { domain, path };
}

/** The full reference: `docker.io/library/ubuntu:latest`, `host:5000/a/b@sha256:…`, `name:tag@digest`. */
export function formatDockerReference(r: DockerReference): string {
  let s = repositoryName(r);
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/**
 * The short name docker shows, without tag or digest: `docker.io/` is dropped, and so is `library/`
 * before a single component (`ubuntu`, `user/repo`, `library/a/b`, `host:5000/repo`).
 */
export function familiarName(r: DockerReference): string {
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  if (r.path.startsWith(OFFICIAL_PREFIX)) {
    const rest = r.path.slice(OFFICIAL_PREFIX.length);
    if (!rest.includes('/')) return rest;
  }
  return r.path;
}

/** `domain/path`, e.g. `docker.io/library/ubuntu`. */
export function repositoryName(r: DockerReference): string {
  return `${r.domain}/${r.path}`;
}

/** The host to contact for a domain: `docker.io` is served by `registry-1.docker.io`. */
export function registryHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY : domain;
}
