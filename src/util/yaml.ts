/**
 * The part of YAML that configuration files such as skopeo sync's use: block mappings and sequences
 * by indentation, flow sequences and mappings of scalars (`[a, "b"]`, `{}`), plain, single- and
 * double-quoted scalars, and comments. Plain scalars stay strings (a tag `1.0` is "1.0", as Go's yaml
 * gives it to a string field); callers read `true`/`false` where they expect a boolean. Anchors,
 * tags, block scalars and multi-document streams are refused with the line that uses them.
 *
 * Bounded: the caller caps the text; nesting deeper than 32 levels and duplicate keys are errors.
 */
import { OciToolError } from './errors.js';

export type YamlValue = string | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  no: number;
  indent: number;
  text: string;
}

const MAX_DEPTH = 32;

/** Parses `text` (from `file`, for messages). */
export function parseYaml(text: string, file: string): YamlValue {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const no = i + 1;
    const body = stripComment(raw, file, no);
    if (body.trim() === '') return;
    const indent = body.length - body.trimStart().length;
    if (/^ *\t/.test(body)) throw err(file, no, 'tabs cannot indent YAML');
    const t = body.trim();
    if (t === '---' && lines.length === 0) return;
    if (t === '---' || t === '...') throw err(file, no, 'one document only');
    lines.push({ no, indent, text: t });
  });
  if (lines.length === 0) return null;
  const p = { i: 0 };
  const v = block(lines, p, lines[0]!.indent, file, 0);
  if (p.i < lines.length) throw err(file, lines[p.i]!.no, 'unexpected indentation');
  return v;
}

function err(file: string, line: number, why: string): OciToolError {
  return new OciToolError('USAGE', `${file}:${line}: ${why}`);
}

/** The line without its comment (a `#` at the start or after a space, outside quotes). */
function stripComment(raw: string, file: string, no: number): string {
  let quote: string | undefined;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      // Quotes open a scalar only where one starts.
      if (i === 0 || /[\s:,[{-]/.test(raw[i - 1]!)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(raw[i - 1]!))) return raw.slice(0, i);
  }
  if (quote) throw err(file, no, 'unterminated quoted string');
  return raw;
}

function block(lines: Line[], p: { i: number }, indent: number, file: string, depth: number): YamlValue {
  if (depth > MAX_DEPTH) throw err(file, lines[p.i]!.no, `nested deeper than ${MAX_DEPTH} levels`);
  const first = lines[p.i]!;
  if (first.text === '-' || first.text.startsWith('- ')) {
    const out: YamlValue[] = [];
    while (p.i < lines.length && lines[p.i]!.indent === indent && (lines[p.i]!.text === '-' || lines[p.i]!.text.startsWith('- '))) {
      const line = lines[p.i]!;
      p.i++;
      const rest = line.text.slice(1).trim();
      if (rest === '') out.push(p.i < lines.length && lines[p.i]!.indent > indent ? block(lines, p, lines[p.i]!.indent, file, depth + 1) : null);
      else if (splitKey(rest, file, line.no)) throw err(file, line.no, 'mappings inside sequence items are not supported here');
      else out.push(scalarOrFlow(rest, file, line.no));
    }
    return out;
  }
  const out: { [key: string]: YamlValue } = {};
  while (p.i < lines.length && lines[p.i]!.indent === indent) {
    const line = lines[p.i]!;
    const kv = splitKey(line.text, file, line.no);
    if (!kv) throw err(file, line.no, `expected "key: value", found ${JSON.stringify(line.text.slice(0, 40))}`);
    p.i++;
    checkKey(kv.key, file, line.no);
    if (Object.hasOwn(out, kv.key)) throw err(file, line.no, `key ${JSON.stringify(kv.key)} given twice`);
    if (kv.value !== '') out[kv.key] = scalarOrFlow(kv.value, file, line.no);
    else if (p.i < lines.length && lines[p.i]!.indent > indent) out[kv.key] = block(lines, p, lines[p.i]!.indent, file, depth + 1);
    // A sequence may sit at its key's own indentation ("key:\n- a").
    else if (p.i < lines.length && lines[p.i]!.indent === indent && lines[p.i]!.text.startsWith('-')) out[kv.key] = block(lines, p, indent, file, depth + 1);
    else out[kv.key] = null;
  }
  if (p.i < lines.length && lines[p.i]!.indent > indent) throw err(file, lines[p.i]!.no, 'unexpected indentation');
  return out;
}

/** `key: value` (the value may be empty) where `text` is a mapping entry. */
function splitKey(text: string, file: string, no: number): { key: string; value: string } | undefined {
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = quotedEnd(text, 0);
    if (end < 0) throw err(file, no, 'unterminated quoted key');
    const after = text.slice(end + 1);
    if (!/^\s*:(\s|$)/.test(after)) return undefined;
    return { key: unquote(text.slice(0, end + 1), file, no), value: after.replace(/^\s*:/, '').trim() };
  }
  if (/^[[{]/.test(text)) return undefined;
  // A ':' ends the key only before a space or the end of the line (`localhost:5000:` is one key).
  const m = /:(\s|$)/.exec(text);
  if (!m) return undefined;
  const key = text.slice(0, m.index).trim();
  if (/^[&*!|>%@`]/.test(key)) throw err(file, no, `YAML feature not supported here: ${JSON.stringify(key.slice(0, 20))}`);
  return { key, value: text.slice(m.index + 1).trim() };
}

/** Keys that would reach an object's prototype instead of holding a value are refused. */
function checkKey(key: string, file: string, no: number): void {
  if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw err(file, no, `key ${JSON.stringify(key)} is not allowed`);
}

function quotedEnd(s: string, start: number): number {
  const q = s[start]!;
  for (let i = start + 1; i < s.length; i++) {
    if (q === '"' && s[i] === '\\') i++;
    else if (s[i] === q) {
      if (q === "'" && s[i + 1] === "'") i++;
      else return i;
    }
  }
  return -1;
}

function unquote(s: string, file: string, no: number): string {
  if (s.startsWith("'")) return s.slice(1, -1).replace(/''/g, "'");
  try {
    return JSON.parse(s.replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')) as string;
  } catch {
    throw err(file, no, `bad escape in ${s.slice(0, 40)}`);
  }
}

function scalarOrFlow(text: string, file: string, no: number, depth = 0): YamlValue {
  if (depth > MAX_DEPTH) throw err(file, no, `nested deeper than ${MAX_DEPTH} levels`);
  if (text.startsWith('[')) return flowItems(text, ']', file, no).map((s) => scalarOrFlow(s, file, no, depth + 1));
  if (text.startsWith('{')) {
    const out: { [key: string]: YamlValue } = {};
    for (const item of flowItems(text, '}', file, no)) {
      const kv = splitKey(item, file, no);
      if (!kv) throw err(file, no, `expected "key: value" in ${text.slice(0, 40)}`);
      checkKey(kv.key, file, no);
      if (Object.hasOwn(out, kv.key)) throw err(file, no, `key ${JSON.stringify(kv.key)} given twice`);
      out[kv.key] = kv.value === '' ? null : scalarOrFlow(kv.value, file, no, depth + 1);
    }
    return out;
  }
  return scalar(text, file, no);
}

/** The comma-separated items of a flow collection written on one line (nested ones kept whole). */
function flowItems(text: string, close: string, file: string, no: number): string[] {
  if (!text.endsWith(close)) throw err(file, no, `a flow collection must close on its line: ${text.slice(0, 40)}`);
  const inner = text.slice(1, -1);
  const items: string[] = [];
  const stack: string[] = [];
  let start = 0;
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i];
    if (c === '"' || c === "'") {
      const end = quotedEnd(inner, i);
      if (end < 0) throw err(file, no, 'unterminated quoted string');
      i = end;
    } else if (c === '[' || c === '{') stack.push(c === '[' ? ']' : '}');
    else if (c === ']' || c === '}') {
      if (stack.pop() !== c) throw err(file, no, `unbalanced ${c} in ${text.slice(0, 40)}`);
    } else if ((c === ',' && stack.length === 0) || i === inner.length) {
      if (stack.length > 0) throw err(file, no, `a flow collection must close on its line: ${text.slice(0, 40)}`);
      const item = inner.slice(start, i).trim();
      if (item !== '') items.push(item);
      else if (c === ',') throw err(file, no, `empty item in ${text.slice(0, 40)}`);
      start = i + 1;
    }
  }
  return items;
}

function scalar(text: string, file: string, no: number): string | null {
  if (text.startsWith('"') || text.startsWith("'")) {
    if (quotedEnd(text, 0) !== text.length - 1) throw err(file, no, `text after a quoted string: ${text.slice(0, 40)}`);
    return unquote(text, file, no);
  }
  if (/^[&*!|>%@`]/.test(text)) throw err(file, no, `YAML feature not supported here: ${JSON.stringify(text.slice(0, 20))}`);
  if (text === '~' || text === 'null' || text === 'Null' || text === 'NULL') return null;
  return text;
}
