/**
 * Writing credentials, as `docker login` / `docker logout` do: into the docker config
 * (`--authfile FILE`, else `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), or through the
 * credential helper that config names for the host (`credHelpers`, then `credsStore`: the helper's
 * `store` and `erase`). Every other key of the file is kept as it was; the file is replaced atomically
 * (a temp file beside it, synced, renamed) with mode 0600, and a symlinked config is written through
 * its link, as docker does.
 */
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { OciToolError, errno } from '../../util/errors.js';
import { atomicWriteFile } from '../../util/fs.js';
import { DOCKER_HUB_KEY, callCredentialHelper, configKeysFor, type Credential } from './credentials.js';
import { jsonErrorOffset, lineAndColumn } from './json-position.js';

export interface StoreOptions {
  /** The file to write (`--authfile`); default the docker config. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
}

/** Where a login is written: what was stored, for the message. */
export type StoredIn = { file: string } | { helper: string };

/** The docker config a login writes. */
export function loginConfigFile(opts: StoreOptions = {}): string {
  if (opts.file) return opts.file;
  const env = opts.env ?? process.env;
  return join(env.DOCKER_CONFIG ?? join(opts.home ?? homedir(), '.docker'), 'config.json');
}

/** The key a new entry gets: the host as written, Docker Hub under its v1 URL. */
function entryKey(host: string): string {
  return host === 'docker.io' ? DOCKER_HUB_KEY : host;
}

type ConfigDoc = Record<string, unknown> & { auths?: Record<string, unknown>; credHelpers?: Record<string, unknown>; credsStore?: unknown };

async function readDoc(file: string): Promise<ConfigDoc> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return {};
    throw new OciToolError('IO', `${file}: cannot read (${errno(err) ?? String(err)})`);
  }
  if (text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const at = jsonErrorOffset(text);
    throw new OciToolError('INVALID_JSON', `${file}: malformed JSON${at === undefined ? '' : ` at ${lineAndColumn(text, at)}`} (content not shown: it may hold credentials); nothing written`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new OciToolError('INVALID_JSON', `${file}: not a JSON object; nothing written`);
  const d = doc as ConfigDoc;
  for (const k of ['auths', 'credHelpers'] as const) {
    const v = d[k];
    if (v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new OciToolError('INVALID_JSON', `${file}: "${k}" is not an object; nothing written`);
  }
  return d;
}

async function writeDoc(file: string, doc: ConfigDoc): Promise<void> {
  // Through a symlinked config (dotfile managers), not over the link.
  const target = await realpath(file).catch(() => file);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });
  await atomicWriteFile(target, `${JSON.stringify(doc, null, '\t')}\n`, dirname(target), 0o600);
}

/** The helper the config names for `host`, if any. */
function helperFor(doc: ConfigDoc, host: string): string | undefined {
  const helpers = doc.credHelpers ?? {};
  for (const k of configKeysFor(host)) if (typeof helpers[k] === 'string') return helpers[k];
  return typeof doc.credsStore === 'string' && doc.credsStore !== '' ? doc.credsStore : undefined;
}

/** Stores a verified credential for `host`; says where. */
export async function storeCredential(host: string, cred: Credential, opts: StoreOptions = {}): Promise<StoredIn> {
  const file = loginConfigFile(opts);
  const doc = await readDoc(file);
  const helper = helperFor(doc, host);
  const key = entryKey(host);
  if (helper) {
    const input = JSON.stringify({ ServerURL: key, Username: cred.username ?? '<token>', Secret: cred.password ?? cred.identityToken ?? '' });
    await callCredentialHelper(helper, 'store', input, opts.env ?? process.env);
    // An old entry in auths would be read before the helper: it goes.
    const auths = { ...(doc.auths ?? {}) };
    const stale = configKeysFor(host).filter((k) => Object.hasOwn(auths, k));
    if (stale.length > 0) {
      for (const k of stale) delete auths[k];
      await writeDoc(file, { ...doc, auths });
    }
    return { helper: `docker-credential-${helper}` };
  }
  const auths = { ...(doc.auths ?? {}) };
  // One entry for the host: the other spellings of it (https://host, …) would shadow or confuse.
  for (const k of configKeysFor(host)) delete auths[k];
  auths[key] = cred.identityToken !== undefined ? { identitytoken: cred.identityToken } : { auth: Buffer.from(`${cred.username ?? ''}:${cred.password ?? ''}`).toString('base64') };
  await writeDoc(file, { ...doc, auths });
  return { file };
}

/** Removes what is stored for `host`; false when nothing was. */
export async function eraseCredential(host: string, opts: StoreOptions = {}): Promise<boolean> {
  const file = loginConfigFile(opts);
  const doc = await readDoc(file);
  let erased = false;
  const helper = helperFor(doc, host);
  if (helper) erased = (await callCredentialHelper(helper, 'erase', entryKey(host), opts.env ?? process.env)) !== undefined;
  const auths = { ...(doc.auths ?? {}) };
  const keys = configKeysFor(host).filter((k) => Object.hasOwn(auths, k));
  if (keys.length > 0) {
    for (const k of keys) delete auths[k];
    await writeDoc(file, { ...doc, auths });
    erased = true;
  }
  return erased;
}
