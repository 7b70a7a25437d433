import { existsSync } from 'node:fs';
import { OciToolError } from '../util/errors.js';
import { isRegistryDomain, parseDockerName, quote } from '../reference/docker-name.js';
import { parseReference, unknownTransport, type ImageReference } from '../reference/transport.js';
import { parsePlatform, parsePlatforms } from '../spec/platform.js';
import type { Platform } from '../spec/types.js';

const TRANSPORT_PREFIX = /^(oci|oci-archive|docker|docker-archive|dir):/;
/**
 * `SCHEME:/…` (`dockr://…`, `https://…`): meant as a transport or a URL, never as a layout directory
 * named `SCHEME` (a tag cannot start with '/').
 */
const SCHEME_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:\//;

/**
 * An image reference argument. A string without a transport prefix is read as an OCI layout,
 * `DIR[:TAG|@DIGEST]`, so `ocitool ls ./layout` and `ocitool inspect ./layout:v1` work. Two shapes
 * are usage errors instead of layouts: `SCHEME:/…` with an unknown scheme (the known transports
 * are listed), and a name whose first component is a registry (`ghcr.io/org/app:v1`,
 * `localhost:5000/app`) when no such path exists (docker://… is suggested; `./NAME` or `oci:NAME`
 * keeps a layout of that name).
 */
export function parseImageArg(s: string): ImageReference {
  if (TRANSPORT_PREFIX.test(s)) return parseReference(s);
  if (SCHEME_PREFIX.test(s)) unknownTransport(s);
  refuseRegistryName(s);
  return parseReference(`oci:${s}`);
}

/** Refuses `HOST/PATH…` (HOST a registry domain) that names no existing path. */
function refuseRegistryName(s: string): void {
  const slash = s.indexOf('/');
  if (slash < 0 || !isRegistryDomain(s.slice(0, slash))) return;
  // The directory a layout reading would use: up to the first ':' (the tag) or '@' (a digest).
  const dir = s.split(/[:@]/, 1)[0]!;
  if (existsSync(dir)) return;
  let parses = true;
  try {
    parseDockerName(s);
  } catch {
    parses = false;
  }
  const hint = parses ? `write ${quote(`docker://${s}`)}` : 'a registry image is written docker://HOST/REPO[:TAG]';
  throw new OciToolError('USAGE', `${quote(s)} looks like a registry image, not a layout: ${hint} (a layout directory is written ./DIR[:TAG] or oci:DIR[:TAG])`);
}

/**
 * The values of a repeatable option declared without `array` (which would swallow the positional
 * arguments after it): yargs gives one value, or an array when it was repeated.
 */
export const repeated = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

/** A reference that must name an OCI layout. */
export function parseLayoutArg(s: string): Extract<ImageReference, { transport: 'oci' }> {
  const ref = parseImageArg(s);
  if (ref.transport !== 'oci') {
    throw new OciToolError('USAGE', `"${s}" is not an OCI layout (expected DIR or oci:DIR)`);
  }
  return ref;
}

export function platformArg(s: string | undefined): Platform | undefined {
  return s === undefined ? undefined : parsePlatform(s);
}

/** `--platform OS/ARCH[/VARIANT][,…]` (build): one platform or a comma list; `what` names it in messages. */
export function platformsArg(s: string | undefined, what = '--platform'): Platform[] | undefined {
  return s === undefined ? undefined : parsePlatforms(s, what);
}

/** RFC 3339 date-time: `2024-01-01T00:00:00Z`, `2024-01-01T02:00:00.5+02:00` (a space for the T too). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;
/** 9999-12-31T23:59:59Z, the last second RFC 3339 can write. */
const MAX_SECONDS = 253_402_300_799;

/** Seconds since the epoch of an RFC 3339 time (fractions dropped), or undefined when it is none. */
function rfc3339Seconds(v: string): number | undefined {
  const m = RFC3339.exec(v);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, sec);
  const t = new Date(ms);
  // Date.UTC rolls 2024-02-30 over to March: a field out of range shows as a changed one.
  if (y < 1970 || t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d || h > 23 || mi > 59 || sec > 59) return undefined;
  const offH = Number(m[10] ?? 0);
  const offM = Number(m[11] ?? 0);
  if (offH > 23 || offM > 59) return undefined;
  const offset = (m[9] === '-' ? -1 : 1) * (offH * 3600 + offM * 60);
  return ms / 1000 - offset;
}

/**
 * The one parser of `--created` (build, repack): an RFC 3339 time (fractions of a second dropped) or
 * seconds since the epoch (`1704067200`, `@1704067200`); without the flag, SOURCE_DATE_EPOCH (whole
 * seconds); else undefined (now). Anything else, or a time before 1970 or after 9999, is a usage error.
 */
export function createdSeconds(flag: string | undefined, env = process.env.SOURCE_DATE_EPOCH): number | undefined {
  if (flag === undefined && (env === undefined || env === '')) return undefined;
  const v = flag ?? env!;
  const seconds = /^@?\d{1,15}$/.test(v) ? Number(v.replace('@', '')) : flag !== undefined ? rfc3339Seconds(v) : undefined;
  if (seconds === undefined || seconds < 0 || seconds > MAX_SECONDS) {
    throw new OciToolError(
      'USAGE',
      flag !== undefined
        ? `--created ${JSON.stringify(v)}: expected an RFC 3339 time (e.g. 2024-01-01T00:00:00Z) or seconds since the epoch, from 1970 to 9999`
        : `SOURCE_DATE_EPOCH=${v}: expected whole seconds since the epoch`,
    );
  }
  return Math.floor(seconds);
}
