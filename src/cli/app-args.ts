import { packageLabels, packageMain, readAppManifest, type AppManifest, type AppOptions } from '../app/package-json.js';
import { normalizePort, parseKeyValues } from '../image/config.js';
import { rawArgv } from './raw-argv.js';

/** Whether `--NAME` (or `--NAME=…`) is on the command line (for flags with a default). */
export function flagGiven(name: string, argv: string[] = rawArgv()): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
}

/**
 * `build --app DIR`: package.json's `"ocitool"` options (checked now, before any work) and the
 * defaults it implies. Command-line flags win: a scalar flag replaces the option; env, labels,
 * annotations, expose and volumes add to it (a key given on the command line wins).
 */
export interface AppDefaults {
  manifest: AppManifest;
  options: AppOptions;
  /** NODE_ENV=production, then the "ocitool" env. */
  env: string[];
  /** Labels package.json describes, then the "ocitool" labels. */
  labels: Record<string, string>;
  entrypoint: string[];
  workdir: string;
}

export async function appDefaults(dir: string): Promise<AppDefaults> {
  const manifest = await readAppManifest(dir);
  const o = manifest.options;
  const where = (key: string): string => `${manifest.file} "ocitool".${key}`;
  parseKeyValues(o.env ?? [], where('env'));
  for (const p of o.expose ?? []) normalizePort(p);
  return {
    manifest,
    options: o,
    env: ['NODE_ENV=production', ...(o.env ?? [])],
    labels: { ...packageLabels(manifest.pkg), ...(o.labels ?? {}) },
    entrypoint: o.entrypoint ?? ['node', packageMain(manifest.pkg)],
    workdir: o.workdir ?? '/app',
  };
}
