import type { ContainerConfig, HistoryEntry, ImageConfig, Platform } from '../spec/types.js';
import { OciToolError } from '../util/errors.js';

/** Changes to an image's runtime config. Unset fields inherit from the base. */
export interface ConfigChanges {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workdir?: string;
  user?: string;
  labels?: Record<string, string>;
  expose?: string[];
  volumes?: string[];
  stopSignal?: string;
}

/** Parses `K=V` flags into a record (later keys win). */
export function parseKeyValues(items: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i <= 0) throw new OciToolError('USAGE', `${flag} ${JSON.stringify(item)}: expected KEY=VALUE`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** `80`, `80/tcp`, `53/udp` → the ExposedPorts key (`80/tcp`). */
export function normalizePort(p: string): string {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) throw new OciToolError('USAGE', `--expose ${JSON.stringify(p)}: expected PORT[/tcp|udp|sctp]`);
  return `${m[1]}${m[2] ? `-${m[2]}` : ''}/${(m[3] ?? 'tcp').toLowerCase()}`;
}

/**
 * Applies config changes to a base runtime config and returns the new one plus one history line
 * (Dockerfile-like `created_by`) per kind of change, in a fixed order.
 */
export function applyConfigChanges(base: ContainerConfig | undefined, c: ConfigChanges): { config: ContainerConfig; steps: string[] } {
  const config: ContainerConfig = { ...(base ?? {}) };
  const steps: string[] = [];
  if (c.env && c.env.length > 0) {
    const env = [...(config.Env ?? [])];
    for (const [k, v] of Object.entries(parseKeyValues(c.env, '--env'))) {
      const i = env.findIndex((e) => e.split('=', 1)[0] === k);
      if (i >= 0) env[i] = `${k}=${v}`;
      else env.push(`${k}=${v}`);
    }
    config.Env = env;
    steps.push(`ENV ${c.env.join(' ')}`);
  }
  if (c.entrypoint) {
    config.Entrypoint = c.entrypoint.length === 1 && c.entrypoint[0] === '' ? null : c.entrypoint;
    if (!c.cmd) delete config.Cmd; // as in a Dockerfile, a new entrypoint drops the inherited command
    steps.push(`ENTRYPOINT ${JSON.stringify(config.Entrypoint ?? [])}`);
  }
  if (c.cmd) {
    config.Cmd = c.cmd.length === 1 && c.cmd[0] === '' ? null : c.cmd;
    steps.push(`CMD ${JSON.stringify(config.Cmd ?? [])}`);
  }
  if (c.workdir !== undefined) {
    config.WorkingDir = c.workdir;
    steps.push(`WORKDIR ${c.workdir}`);
  }
  if (c.user !== undefined) {
    config.User = c.user;
    steps.push(`USER ${c.user}`);
  }
  if (c.labels && Object.keys(c.labels).length > 0) {
    config.Labels = { ...(config.Labels ?? {}), ...c.labels };
    steps.push(`LABEL ${Object.entries(c.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`);
  }
  if (c.expose && c.expose.length > 0) {
    const ports = { ...(config.ExposedPorts ?? {}) };
    for (const p of c.expose) ports[normalizePort(p)] = {};
    config.ExposedPorts = ports;
    steps.push(`EXPOSE ${c.expose.map(normalizePort).join(' ')}`);
  }
  if (c.volumes && c.volumes.length > 0) {
    const vols = { ...(config.Volumes ?? {}) };
    for (const v of c.volumes) vols[v] = {};
    config.Volumes = vols;
    steps.push(`VOLUME ${JSON.stringify(c.volumes)}`);
  }
  if (c.stopSignal !== undefined) {
    config.StopSignal = c.stopSignal;
    steps.push(`STOPSIGNAL ${c.stopSignal}`);
  }
  return { config, steps };
}

/**
 * The new image config: the base's (or an empty one) with platform, runtime config, rootfs and
 * history replaced. Keys keep a fixed order so equal inputs serialise to equal bytes.
 */
export function makeImageConfig(opts: {
  base?: ImageConfig;
  platform: Platform;
  created: string;
  config: ContainerConfig;
  diffIds: string[];
  history: HistoryEntry[];
}): ImageConfig {
  const { base, platform } = opts;
  const out: ImageConfig = {
    ...(base ?? {}),
    created: opts.created,
    architecture: platform.architecture,
    os: platform.os,
    config: opts.config,
    rootfs: { type: 'layers', diff_ids: opts.diffIds },
    history: opts.history,
  };
  if (platform.variant !== undefined) out.variant = platform.variant;
  else delete out.variant;
  if (platform['os.version'] !== undefined) out['os.version'] = platform['os.version'];
  return out;
}
