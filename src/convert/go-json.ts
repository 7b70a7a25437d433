/**
 * JSON written byte for byte as Go's encoding/json writes it, where ocitool must produce the same bytes
 * (and so the same digests) as containers/image: schema 1 conversion rebuilds an image config from raw
 * JSON values and Go structs. SPEC-NOTES §4.6 has the rules:
 * - strings escape `<`, `>`, `&`, U+2028 and U+2029 (HTML-safe), control characters as `\n`, `\r`,
 *   `\t` or `\u00XX`;
 * - raw values are compacted token by token, keeping their number and escape text;
 * - map keys are sorted by their UTF-8 bytes;
 * - times print as RFC 3339 with the fraction's trailing zeros removed and a zero offset as `Z`.
 */
import { parseJson } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';

const HTML_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

/** A JSON string literal as Go writes it. */
export function goString(s: string): string {
  return JSON.stringify(s)
    .replace(/[<>&\u2028\u2029]/g, (c) => HTML_ESCAPES[c]!)
    .replace(/\\[bf]/g, (e) => (e === '\\b' ? '\\u0008' : '\\u000c'));
}

/** Compacts a raw JSON value as Go's json.Compact with HTML escaping does: whitespace out, tokens kept. */
export function compactRaw(raw: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inString) {
      if (c === '\\') {
        out += c + (raw[i + 1] ?? '');
        i++;
      } else {
        if (c === '"') inString = false;
        out += HTML_ESCAPES[c] ?? c;
      }
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') {
      out += c;
    }
  }
  return out;
}

/** Index just past the JSON value starting at `i` (after whitespace); `text` must be valid JSON. */
function skipValue(text: string, i: number): number {
  i = skipSpace(text, i);
  const c = text[i];
  if (c === '"') {
    for (i++; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '"') return i + 1;
    }
    return i;
  }
  if (c === '{' || c === '[') {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text[i];
      if (d === '"') i = skipValue(text, i) - 1;
      else if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') {
        if (--depth === 0) return i + 1;
      }
    }
    return i;
  }
  while (i < text.length && !/[\s,}\]]/.test(text[i]!)) i++;
  return i;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  return i;
}

/**
 * The members of a JSON object as (key, raw value text) pairs, in order, a later duplicate key
 * replacing an earlier one (as decoding into a Go map does). `text` is checked to be valid JSON.
 */
export function rawObjectEntries(text: string, what: string): Map<string, string> {
  const parsed = parseJson(text, what, Infinity);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new OciToolError('INVALID_JSON', `${what}: not a JSON object`);
  const out = new Map<string, string>();
  let i = skipSpace(text, 0) + 1; // past '{'
  for (;;) {
    i = skipSpace(text, i);
    if (text[i] === '}') break;
    if (text[i] === ',') i = skipSpace(text, i + 1);
    const keyEnd = skipValue(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd) + 1; // past ':'
    const start = skipSpace(text, i);
    const end = skipValue(text, start);
    out.delete(key);
    out.set(key, text.slice(start, end));
    i = end;
  }
  return out;
}

const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** A Go `map[string]json.RawMessage` marshalled: keys sorted by UTF-8 bytes, values compacted. */
export function marshalRawMap(members: Map<string, string>): string {
  const keys = [...members.keys()].sort(utf8Order);
  return `{${keys.map((k) => `${goString(k)}:${compactRaw(members.get(k)!)}`).join(',')}}`;
}

/** A Go map with plain values (labels, exposed ports, volumes): keys sorted by UTF-8 bytes. */
export function marshalSortedObject(obj: Record<string, unknown>, value: (v: unknown) => string): string {
  return `{${Object.keys(obj)
    .sort(utf8Order)
    .map((k) => `${goString(k)}:${value(obj[k])}`)
    .join(',')}}`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Go's zero time, which time.Time fields without a value print. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * An RFC 3339 time as Go's time.Time marshals it after parsing it: at most nine fraction digits
 * (extra digits dropped), trailing zeros removed, the offset kept (`Z` when zero). Undefined when
 * `s` is not an RFC 3339 time.
 */
export function goTime(s: string): string | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const frac = (m[3] ?? '').slice(0, 9).replace(/0+$/, '');
  const zone = m[4]!.toUpperCase() === 'Z' || m[4] === '+00:00' || m[4] === '-00:00' ? 'Z' : m[4]!;
  return `${m[1]}T${m[2]}${frac ? `.${frac}` : ''}${zone}`;
}
