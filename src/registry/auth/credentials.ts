/**
 * Where registry credentials come from, in the order docker and skopeo users expect:
 * explicit `--creds`, `REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`),
 * then containers' `auth.json` (`$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`).
 * Within a file: a `credHelpers` entry for the host, then `auths` (`auth` or `username`/`password`,
 * `identitytoken`), then `credsStore`. Docker Hub is keyed `https://index.docker.io/v1/`.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciToolError } from '../../util/errors.js';
import { jsonErrorOffset, lineAndColumn } from './json-position.js';

export interface Credential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`), used with the token endpoint's POST flow. */
  identityToken?: string;
  /** Where it came from, for messages. */
  source: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export interface CredentialOptions {
  env?: NodeJS.ProcessEnv;
  home?: string;
}

export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** The keys a config may use for a registry host. */
export function configKeysFor(host: string): string[] {
  if (host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') {
    return [DOCKER_HUB_KEY, 'docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1', 'https://registry-1.docker.io'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`, `http://${host}/v2/`];
}

let authFile: string | undefined;

/** Makes `file` the one credentials file of the process (`--authfile`, as skopeo's), or the defaults again. */
export function setAuthFile(file: string | undefined): void {
  authFile = file;
}

/** The config files to consult, in order: the `--authfile` alone when one is set. */
export function credentialFiles(opts: CredentialOptions = {}): string[] {
  if (authFile !== undefined) return [authFile];
  const env = opts.env ?? process.env;
  const home = opts.home ?? homedir();
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(join(env.DOCKER_CONFIG ?? join(home, '.docker'), 'config.json'));
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(join(home, '.config', 'containers', 'auth.json'));
  return files;
}

async function readConfig(file: string): Promise<ConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as ConfigFile;
  } catch {
    // Never the parser's message: it quotes the file around the fault, and that may be a password.
    const at = jsonErrorOffset(text);
    throw new OciToolError('INVALID_JSON', `${file}: malformed JSON${at === undefined ? '' : ` at ${lineAndColumn(text, at)}`} (content not shown: it may hold credentials)`);
  }
}

export type HelperAction = 'get' | 'store' | 'erase';

/**
 * Runs `docker-credential-NAME ACTION` with `input` on stdin (the server for get and erase, a JSON
 * object for store); its stdout, or undefined when it says it has no credentials for the server. Its
 * error output names the failure, never the input (which may be a secret).
 */
export function callCredentialHelper(name: string, action: HelperAction, input: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const program = `docker-credential-${name}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return Promise.reject(new OciToolError('INVALID_JSON', `credential helper ${JSON.stringify(name.slice(0, 40))}: not a helper name`));
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    // A helper's answer is a small JSON document: more than 1 MiB ends it.
    const capped = (add: (s: string) => void) => (c: Buffer): void => {
      if (out.length + err.length + c.length > 1 << 20) child.kill('SIGKILL');
      else add(c.toString());
    };
    child.stdout.on('data', capped((s) => (out += s)));
    child.stderr.on('data', capped((s) => (err += s)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new OciToolError('IO', `credential helper ${program}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH' : e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) return resolve(out);
      // "credentials not found" is no error: there just are none for this server.
      if (action !== 'store' && /credentials not found/i.test(out + err)) return resolve(undefined);
      // Its stderr only: what a helper prints on stdout may be a secret.
      reject(new OciToolError('IO', `credential helper ${program} ${action} failed: ${err.trim().split('\n')[0]?.slice(0, 200) || `exit ${code}`}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Runs `docker-credential-NAME get` with the server on stdin. */
export async function runCredentialHelper(name: string, server: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const program = `docker-credential-${name}`;
  const out = await callCredentialHelper(name, 'get', server, env).catch((e: unknown) => {
    throw e instanceof OciToolError && e.message.includes(' get failed: ') ? new OciToolError('IO', e.message.replace(' get failed: ', ` failed for ${server}: `)) : e;
  });
  if (out === undefined) return undefined;
  try {
    const v = JSON.parse(out) as { Username?: string; Secret?: string };
    if (!v.Secret) return undefined;
    const source = `credential helper ${program}`;
    return v.Username === '<token>' ? { identityToken: v.Secret, source } : { username: v.Username ?? '', password: v.Secret, source };
  } catch {
    throw new OciToolError('IO', `credential helper ${program} printed no JSON for ${server}`);
  }
}

function fromEntry(entry: AuthEntry, source: string): Credential | undefined {
  if (entry.identitytoken) return { identityToken: entry.identitytoken, source, ...(entry.username ? { username: entry.username } : {}) };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) throw new OciToolError('INVALID_JSON', `${source}: "auth" is not base64 of USER:PASSWORD`);
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1), source };
  }
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password, source };
  return undefined;
}

/**
 * Credentials for a registry host (`host[:port]`, `docker.io` for Docker Hub), or undefined for
 * anonymous access. `explicit` (from `--creds`) wins over every file.
 */
export async function resolveCredentials(host: string, explicit?: Credential, opts: CredentialOptions = {}): Promise<Credential | undefined> {
  if (explicit) return explicit;
  const env = opts.env ?? process.env;
  const keys = configKeysFor(host);
  for (const file of credentialFiles(opts)) {
    const cfg = await readConfig(file);
    if (!cfg) continue;
    const helperKey = keys.find((k) => cfg.credHelpers?.[k] !== undefined);
    if (helperKey !== undefined) return runCredentialHelper(cfg.credHelpers![helperKey]!, helperKey, env);
    const authKey = keys.find((k) => cfg.auths?.[k] !== undefined);
    if (authKey !== undefined) {
      const c = fromEntry(cfg.auths![authKey]!, `${file} (${authKey})`);
      if (c) return c;
    }
    if (cfg.credsStore) {
      const c = await runCredentialHelper(cfg.credsStore, host === 'docker.io' ? DOCKER_HUB_KEY : host, env);
      if (c) return c;
    }
  }
  return undefined;
}

/** Parses `--creds USER[:PASSWORD]`. */
export function parseCreds(s: string): Credential {
  const i = s.indexOf(':');
  if (i <= 0) throw new OciToolError('USAGE', '--creds: expected USER:PASSWORD');
  return { username: s.slice(0, i), password: s.slice(i + 1), source: '--creds' };
}
