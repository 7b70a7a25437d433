/**
 * A Docker image config re-encoded as the OCI image config struct (image-spec's Go `v1.Image`), as
 * containers/image does when it turns a converted schema 1 image into OCI: the fields in struct order,
 * Docker-only fields (container_config, docker_version, Hostname, Healthcheck…) dropped.
 */
import { parseJson } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';
import { goString, goTime, marshalSortedObject } from './go-json.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function time(v: unknown, what: string): string {
  const t = typeof v === 'string' ? goTime(v) : undefined;
  if (t === undefined) throw new OciToolError('INVALID_JSON', `${what}: ${JSON.stringify(v)} is not an RFC 3339 time`);
  return goString(t);
}

const strings = (v: unknown): string => `[${(v as unknown[]).map((s) => goString(String(s))).join(',')}]`;
const nonEmptyList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length > 0;
const nonEmptyMap = (v: unknown): v is Record<string, unknown> => isObject(v) && Object.keys(v).length > 0;

function imageConfig(c: unknown): string {
  if (!isObject(c)) return '{}';
  const parts: string[] = [];
  if (typeof c.User === 'string' && c.User) parts.push(`"User":${goString(c.User)}`);
  if (nonEmptyMap(c.ExposedPorts)) parts.push(`"ExposedPorts":${marshalSortedObject(c.ExposedPorts, () => '{}')}`);
  if (nonEmptyList(c.Env)) parts.push(`"Env":${strings(c.Env)}`);
  if (nonEmptyList(c.Entrypoint)) parts.push(`"Entrypoint":${strings(c.Entrypoint)}`);
  if (nonEmptyList(c.Cmd)) parts.push(`"Cmd":${strings(c.Cmd)}`);
  if (nonEmptyMap(c.Volumes)) parts.push(`"Volumes":${marshalSortedObject(c.Volumes, () => '{}')}`);
  if (typeof c.WorkingDir === 'string' && c.WorkingDir) parts.push(`"WorkingDir":${goString(c.WorkingDir)}`);
  if (nonEmptyMap(c.Labels)) parts.push(`"Labels":${marshalSortedObject(c.Labels, (v) => goString(String(v)))}`);
  if (typeof c.StopSignal === 'string' && c.StopSignal) parts.push(`"StopSignal":${goString(c.StopSignal)}`);
  if (c.ArgsEscaped === true) parts.push('"ArgsEscaped":true');
  return `{${parts.join(',')}}`;
}

/** The OCI image config bytes for a Docker image config (see the module comment). */
export function ociConfigFromDocker(docker: Uint8Array, what: string): Buffer {
  const v = parseJson(docker, what);
  if (!isObject(v)) throw new OciToolError('INVALID_JSON', `${what}: not a JSON object`);
  const parts: string[] = [];
  if (v.created !== undefined && v.created !== null) parts.push(`"created":${time(v.created, `${what} created`)}`);
  if (typeof v.author === 'string' && v.author) parts.push(`"author":${goString(v.author)}`);
  parts.push(`"architecture":${goString(typeof v.architecture === 'string' ? v.architecture : '')}`);
  if (typeof v.variant === 'string' && v.variant) parts.push(`"variant":${goString(v.variant)}`);
  parts.push(`"os":${goString(typeof v.os === 'string' ? v.os : '')}`);
  if (typeof v['os.version'] === 'string' && v['os.version']) parts.push(`"os.version":${goString(v['os.version'])}`);
  if (nonEmptyList(v['os.features'])) parts.push(`"os.features":${strings(v['os.features'])}`);
  parts.push(`"config":${imageConfig(v.config)}`);
  const rootfs = isObject(v.rootfs) ? v.rootfs : {};
  parts.push(`"rootfs":{"type":${goString(typeof rootfs.type === 'string' ? rootfs.type : '')},"diff_ids":${Array.isArray(rootfs.diff_ids) ? strings(rootfs.diff_ids) : 'null'}}`);
  if (nonEmptyList(v.history)) {
    const entries = v.history.map((h, i) => {
      const e = isObject(h) ? h : {};
      const p: string[] = [];
      if (e.created !== undefined && e.created !== null) p.push(`"created":${time(e.created, `${what} history[${i}].created`)}`);
      for (const k of ['created_by', 'author', 'comment']) if (typeof e[k] === 'string' && e[k]) p.push(`"${k}":${goString(e[k])}`);
      if (e.empty_layer === true) p.push('"empty_layer":true');
      return `{${p.join(',')}}`;
    });
    parts.push(`"history":[${entries.join(',')}]`);
  }
  return Buffer.from(`{${parts.join(',')}}`);
}
