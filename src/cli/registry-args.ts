import { statSync } from 'node:fs';
import type { Argv } from 'yargs';
import { parseCreds, setAuthFile, type Credential } from '../registry/auth/credentials.js';
import { DEFAULT_TIMEOUT_SECONDS, parseTimeoutSeconds, setRegistryTimeout } from '../registry/timeout.js';
import { DEFAULT_CONNECTIONS_PER_HOST, MIN_CHUNK_SIZE, setMaxConnectionsPerHost, setUploadChunkSize } from '../registry/upload-settings.js';
import { OciToolError } from '../util/errors.js';

/** The registry flags of commands that reach one registry: credentials, TLS and the request bound. */
export interface RegistryFlags {
  creds?: string;
  username?: string;
  'password-stdin': boolean;
  insecure: boolean;
  'tls-verify': boolean;
  authfile?: string;
  timeout?: string;
  'chunk-size'?: string;
}

/** Applies `--timeout` to every registry request of the process. */
function applyTimeout(args: { timeout?: unknown }): void {
  if (args.timeout === undefined) return;
  const seconds = parseTimeoutSeconds(String(args.timeout));
  if (seconds === undefined) throw new OciToolError('USAGE', `--timeout ${String(args.timeout)}: expected a number of seconds, e.g. --timeout 30`);
  setRegistryTimeout(seconds);
}

/**
 * Applies `--chunk-size`, and caps the connections to one registry at the command's `--concurrency`
 * (where it has one) and two more: one per transfer, and spares for token and status requests.
 */
function applyUpload(args: { 'chunk-size'?: unknown; concurrency?: unknown }): void {
  const c = args['chunk-size'];
  if (c !== undefined) {
    const n = /^\d+$/.test(String(c).trim()) ? Number(String(c).trim()) : NaN;
    if (!Number.isSafeInteger(n) || n < MIN_CHUNK_SIZE) throw new OciToolError('USAGE', `--chunk-size ${String(c)}: expected a number of bytes of at least ${MIN_CHUNK_SIZE}, e.g. --chunk-size 8388608`);
    setUploadChunkSize(n);
  }
  const k = args.concurrency;
  setMaxConnectionsPerHost(typeof k === 'number' && Number.isSafeInteger(k) && k >= 1 ? k + 2 : DEFAULT_CONNECTIONS_PER_HOST);
}

/**
 * skopeo's spellings: `--tls-verify=false` is `--insecure`, and `--authfile FILE` is the one
 * credentials file (it must be a readable file).
 */
function applyTlsAndAuthFile(args: { insecure?: unknown; 'tls-verify'?: unknown; authfile?: unknown }): void {
  if (args['tls-verify'] === false) args.insecure = true;
  if (args.authfile === undefined) return;
  const file = String(args.authfile);
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    throw new OciToolError('USAGE', `--authfile ${file}: no such file`);
  }
  if (!isFile) throw new OciToolError('USAGE', `--authfile ${file}: not a file`);
  setAuthFile(file);
}

export function registryOptions<T>(y: Argv<T>): Argv<T & RegistryFlags> {
  return y
    .option('chunk-size', { type: 'string', describe: `upload blobs in PATCH chunks of this many bytes (at least ${MIN_CHUNK_SIZE}; default: one streaming PATCH per blob, chunks only when the registry asks)` })
    .middleware(applyUpload)
    .option('timeout', {
      type: 'string',
      describe: `seconds a registry may take to answer (connecting, headers, retries together) or stay silent mid-body (default ${DEFAULT_TIMEOUT_SECONDS})`,
    })
    .middleware(applyTimeout)
    .option('creds', { type: 'string', describe: 'USER:PASSWORD for the registry (default: docker/podman config files and credential helpers)' })
    .option('username', { type: 'string', describe: 'user name for the registry, with the password read from stdin (--password-stdin)' })
    .option('password-stdin', { type: 'boolean', default: false, describe: 'read the password (or token) for --username from stdin' })
    .option('authfile', { type: 'string', describe: "the one credentials file to read, as skopeo's --authfile (default: $REGISTRY_AUTH_FILE, then the docker and podman config files)" })
    .option('insecure', { type: 'boolean', default: false, describe: 'allow plain HTTP and unverified TLS to registries (loopback hosts may use HTTP anyway)' })
    .option('tls-verify', { type: 'boolean', default: true, describe: 'verify TLS certificates and require HTTPS but on loopback hosts (--tls-verify=false is --insecure, as in skopeo)' })
    .middleware(applyTlsAndAuthFile) as Argv<T & RegistryFlags>;
}

/** Reads all of stdin: a password, without its final newline. */
export async function readStdinSecret(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
}

/** The credential the flags give, if any: `--creds`, or `--username` with `--password-stdin`. */
export async function credentialFromFlags(args: RegistryFlags): Promise<Credential | undefined> {
  if (args.creds !== undefined && (args.username !== undefined || args['password-stdin'])) {
    throw new OciToolError('USAGE', '--creds cannot be combined with --username/--password-stdin');
  }
  if (args.creds !== undefined) return parseCreds(args.creds);
  if (args['password-stdin'] && args.username === undefined) throw new OciToolError('USAGE', '--password-stdin needs --username');
  if (args.username === undefined) return undefined;
  if (!args['password-stdin']) throw new OciToolError('USAGE', '--username needs --password-stdin (or use --creds USER:PASSWORD)');
  const password = await readStdinSecret();
  if (password === '') throw new OciToolError('USAGE', '--password-stdin: nothing on stdin');
  return { username: args.username, password, source: '--password-stdin' };
}

/** openStore options from the registry flags. */
export async function registryOpen(args: RegistryFlags): Promise<{ insecure: boolean; credential?: Credential }> {
  const credential = await credentialFromFlags(args);
  return credential ? { insecure: args.insecure, credential } : { insecure: args.insecure };
}
