/**
 * `login` and `logout` against one registry host: the credentials are checked first (`GET /v2/`
 * with them: a 200 after Basic, or a token from the token server and a 200 with it), then stored
 * (store-credentials.ts). A wrong password is the registry's one-line refusal, and nothing is written.
 */
import { OciToolError } from '../util/errors.js';
import type { Credential } from './auth/credentials.js';
import { eraseCredential, storeCredential, type StoreOptions, type StoredIn } from './auth/store-credentials.js';
import { RegistryHttp } from './http.js';

const LABEL = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)';
const HOST_RE = new RegExp(`^(?:\\[[0-9A-Fa-f:.]+\\]|${LABEL}(?:\\.${LABEL})*)(?::\\d{1,5})?$`);
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The registry host of a login argument: `HOST[:PORT]`, also written as a URL
 * (`https://HOST/v1/`, as old docker configs do) or `docker://HOST`. Docker Hub is `docker.io`.
 */
export function loginHost(arg: string): string {
  let s = arg.trim();
  const scheme = /^(?:https?|docker):\/\//i.exec(s);
  if (scheme) s = s.slice(scheme[0].length);
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  if (s.includes('@')) throw new OciToolError('USAGE', 'credentials do not go in the host: give them with --username and --password-stdin');
  if (!HOST_RE.test(s)) throw new OciToolError('USAGE', `${JSON.stringify(arg)} is not a registry host (expected HOST or HOST:PORT, e.g. ghcr.io or localhost:5000)`);
  const port = /:(\d+)$/.exec(s);
  if (port && (Number(port[1]) < 1 || Number(port[1]) > 65535)) throw new OciToolError('USAGE', `${JSON.stringify(arg)}: port out of range`);
  return DOCKER_HUB_NAMES.has(s.toLowerCase()) ? 'docker.io' : s;
}

export interface LoginOptions extends StoreOptions {
  insecure?: boolean;
  signal?: AbortSignal;
}

/** Checks `credential` against `host` and stores it; where it went. */
export async function login(host: string, credential: Credential, opts: LoginOptions = {}): Promise<StoredIn> {
  const http = new RegistryHttp(host, { credential, ...(opts.insecure !== undefined ? { insecure: opts.insecure } : {}) });
  const res = await http.request('GET', '/v2/', { scopes: [], what: 'login', ...(opts.signal ? { signal: opts.signal } : {}) });
  await res.cancel();
  return storeCredential(host, credential, opts);
}

/** Removes the stored credentials for `host`; false when there were none. */
export function logout(host: string, opts: StoreOptions = {}): Promise<boolean> {
  return eraseCredential(host, opts);
}
