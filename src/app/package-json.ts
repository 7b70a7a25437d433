import { join } from 'node:path';
import { OciToolError } from '../util/errors.js';
import { parseJsonObject, readCapped } from './lockfile.js';

/** The build options package.json's `"ocitool"` object may hold (command-line flags override them). */
export interface AppOptions {
  from?: string;
  tag?: string;
  /** One platform or several: a list, or a comma string. */
  platform?: string[];
  allowNative?: boolean;
  env?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  expose?: string[];
  volumes?: string[];
  user?: string;
  workdir?: string;
  entrypoint?: string[];
  cmd?: string[];
  compression?: 'gzip' | 'zstd' | 'none';
  format?: 'oci' | 'docker';
}

export interface AppManifest {
  /** DIR/package.json. */
  file: string;
  /** The parsed package.json. */
  pkg: Record<string, unknown>;
  options: AppOptions;
}

const PACKAGE_JSON_MAX_BYTES = 4 * 1024 * 1024;

type Kind = 'string' | 'strings' | 'boolean' | 'record' | { choices: readonly string[] };
const OPTIONS: Record<keyof AppOptions, Kind> = {
  from: 'string',
  tag: 'string',
  platform: 'strings',
  allowNative: 'boolean',
  env: 'strings',
  labels: 'record',
  annotations: 'record',
  expose: 'strings',
  volumes: 'strings',
  user: 'string',
  workdir: 'string',
  entrypoint: 'strings',
  cmd: 'strings',
  compression: { choices: ['gzip', 'zstd', 'none'] },
  format: { choices: ['oci', 'docker'] },
};

function checkOption(file: string, key: string, kind: Kind, v: unknown): unknown {
  const bad = (expected: string): never => {
    throw new OciToolError('INVALID_JSON', `${file}: "ocitool".${key} must be ${expected}`);
  };
  if (kind === 'string') return typeof v === 'string' ? v : bad('a string');
  if (kind === 'boolean') return typeof v === 'boolean' ? v : bad('true or false');
  if (kind === 'strings') {
    // A port may be written as a number, and an exec form as one string (one word).
    const list = typeof v === 'string' || typeof v === 'number' ? [v] : v;
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' || (key === 'expose' && typeof x === 'number'))) return bad('a list of strings');
    return list.map(String);
  }
  if (kind === 'record') {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) return bad('an object of strings');
    return v;
  }
  return typeof v === 'string' && kind.choices.includes(v) ? v : bad(`one of ${kind.choices.join(', ')}`);
}

/** Reads DIR/package.json and checks its `"ocitool"` object (unknown keys and wrong types refused, named). */
export async function readAppManifest(dir: string): Promise<AppManifest> {
  const file = join(dir, 'package.json');
  const pkg = parseJsonObject(await readCapped(file, PACKAGE_JSON_MAX_BYTES, '--app'), file);
  const raw = pkg.ocitool ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new OciToolError('INVALID_JSON', `${file}: "ocitool" must be an object of build options`);
  const options: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(raw)) {
    const kind = OPTIONS[key as keyof AppOptions];
    if (kind === undefined) throw new OciToolError('INVALID_JSON', `${file}: "ocitool".${key} is not a build option (${Object.keys(OPTIONS).join(', ')})`);
    options[key] = checkOption(file, key, kind, v);
  }
  return { file, pkg, options: options as AppOptions };
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The OCI annotation-style labels package.json describes: title, version, description, licenses, source. */
export function packageLabels(pkg: Record<string, unknown>): Record<string, string> {
  const repo = pkg.repository;
  const source = text(repo) ?? (typeof repo === 'object' && repo !== null ? text((repo as Record<string, unknown>).url) : undefined);
  const license = text(pkg.license) ?? (typeof pkg.license === 'object' && pkg.license !== null ? text((pkg.license as Record<string, unknown>).type) : undefined);
  const out: Record<string, string> = {};
  const put = (k: string, v: string | undefined): void => {
    if (v !== undefined) out[`org.opencontainers.image.${k}`] = v;
  };
  put('title', text(pkg.name));
  put('version', text(pkg.version));
  put('description', text(pkg.description));
  put('licenses', license);
  put('source', source);
  return out;
}

/** package.json's `main` (default index.js), the file the entrypoint runs. */
export function packageMain(pkg: Record<string, unknown>): string {
  return text(pkg.main) ?? 'index.js';
}
