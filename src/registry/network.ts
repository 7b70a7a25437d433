import { isIP } from 'node:net';
import { Agent, ProxyAgent, type Dispatcher } from './undici.js';
import { OciToolError } from '../util/errors.js';
import { RegistryTimeout } from './errors.js';
import { formatSeconds } from './timeout.js';
import { maxConnectionsPerHost } from './upload-settings.js';

/**
 * The connections under every registry request: one keep-alive pool per TLS policy, and a proxy
 * chosen per URL from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (either case), as Go's net/http does for
 * docker and skopeo: loopback hosts are never proxied, NO_PROXY takes `*`, host names (a leading dot or
 * not, matching subdomains too), `host:port`, IP addresses and CIDR ranges.
 */

export interface ProxyEnv {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

export function proxyEnvFrom(env: NodeJS.ProcessEnv = process.env): ProxyEnv {
  // The lower-case name wins when both are set (as in curl and Go); an empty value counts as unset.
  const pick = (name: string): string | undefined => {
    for (const v of [env[name.toLowerCase()], env[name.toUpperCase()]]) if (v !== undefined && v.trim() !== '') return v.trim();
    return undefined;
  };
  const out: ProxyEnv = {};
  const h = pick('http_proxy');
  const s = pick('https_proxy');
  const n = pick('no_proxy');
  if (h) out.httpProxy = h;
  if (s) out.httpsProxy = s;
  if (n) out.noProxy = n;
  return out;
}

const LOOPBACK_NAME = /^(localhost|.*\.localhost)$/i;

/** A host name without brackets, lower case. */
const bare = (host: string): string => host.replace(/^\[|\]$/g, '').toLowerCase();

export function isLoopbackHost(hostname: string): boolean {
  const h = bare(hostname);
  if (LOOPBACK_NAME.test(h)) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!net || !Number.isInteger(bits)) return false;
  if (isIP(ip) === 4 && isIP(net) === 4 && bits >= 0 && bits <= 32) {
    if (bits === 0) return true;
    const mask = bits === 32 ? 0xffffffff : ~(2 ** (32 - bits) - 1) >>> 0;
    return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(net) & mask) >>> 0);
  }
  return false;
}

/** Whether NO_PROXY exempts `hostname` (with `port`, the URL's effective port). */
export function noProxyMatches(noProxy: string | undefined, hostname: string, port: string): boolean {
  if (!noProxy) return false;
  const host = bare(hostname);
  for (const raw of noProxy.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (inCidr(host, entry)) return true;
      continue;
    }
    let entryPort: string | undefined;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      entry = m[1]!;
      entryPort = m[2]!;
    }
    entry = bare(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(host) || isIP(entry)) {
      if (host === entry) return true;
      continue;
    }
    const domain = entry.replace(/^\*?\./, '');
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** The proxy URL to reach `url` through, or undefined to connect directly. */
export function proxyFor(url: URL, env: ProxyEnv = proxyEnvFrom()): string | undefined {
  if (isLoopbackHost(url.hostname)) return undefined;
  const proxy = url.protocol === 'https:' ? env.httpsProxy : url.protocol === 'http:' ? env.httpProxy : undefined;
  if (!proxy) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (noProxyMatches(env.noProxy, url.hostname, port)) return undefined;
  // "proxy:3128" without a scheme means http://, as in Go.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/** Connection set-up (TCP + TLS) is bounded by the request bound, and by this at most. */
const MAX_CONNECT_MS = 30_000;
const KEEP_ALIVE_MS = 30_000;

const pools = new Map<string, Dispatcher>();

/**
 * The dispatcher (keep-alive pool, perhaps through a proxy) for a request to `url`. Header and body
 * timeouts are set per request (see RegistryHttp); the pool only bounds connecting.
 */
export function dispatcherFor(url: URL, insecure: boolean, timeoutMs: number, env: ProxyEnv = proxyEnvFrom()): Dispatcher {
  const proxy = proxyFor(url, env);
  const connectTimeout = Math.min(timeoutMs, MAX_CONNECT_MS);
  // A cap on connections per origin (requests past it wait for one): the copy's limiter bounds its
  // requests, and this bounds everything else too (auth, status queries, a library caller's own).
  const connections = maxConnectionsPerHost();
  const key = `${insecure ? 'insecure' : 'verified'} ${connectTimeout} ${connections} ${proxy ?? 'direct'}`;
  let d = pools.get(key);
  if (!d) {
    // Nothing is verified with --insecure: no CA store either (an empty list; loading Node's bundled
    // roots costs ~40 ms of CPU at a process's first TLS connection, even a probe that falls back to HTTP).
    const tls = insecure ? { rejectUnauthorized: false, ca: [] as string[] } : { rejectUnauthorized: true };
    const timeouts = { connectTimeout, keepAliveTimeout: KEEP_ALIVE_MS, connections };
    d = proxy ? new ProxyAgent({ uri: proxy, requestTls: tls, ...timeouts }) : new Agent({ connect: tls, ...timeouts });
    pools.set(key, d);
  }
  return d;
}

const TIMEOUT_PHRASES: Record<string, string> = {
  UND_ERR_HEADERS_TIMEOUT: 'no answer within',
  UND_ERR_BODY_TIMEOUT: 'the answer stalled for',
  UND_ERR_CONNECT_TIMEOUT: 'could not connect within',
};

/** What kind of timeout ended an exchange, as a phrase, if a timeout is what it was. */
function timeoutPhrase(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined, i = 0; e && typeof e === 'object' && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && TIMEOUT_PHRASES[e.code]) return TIMEOUT_PHRASES[e.code];
    if (e.name === 'TimeoutError') return 'no answer within';
  }
  return undefined;
}

/**
 * The one-line error for an exchange with a registry that failed under `label` (`host: what`): a
 * RegistryTimeout saying which bound ran out, or an IO error with the innermost cause. OciToolErrors
 * pass through.
 */
export function transferFailure(label: string, err: unknown, timeoutMs: number): OciToolError {
  if (err instanceof OciToolError) return err;
  const phrase = timeoutPhrase(err);
  if (phrase) return new RegistryTimeout(`${label}: timed out: ${phrase} ${formatSeconds(phrase.startsWith('could not connect') ? Math.min(timeoutMs, MAX_CONNECT_MS) : timeoutMs)} (--timeout)`, { cause: err });
  return new OciToolError('IO', `${label}: ${rootCause(err)}`, { cause: err });
}

const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;

/** The code of a TLS certificate failure somewhere in an error's cause chain, if that is what it is. */
export function certificateError(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && CERT_ERROR.test(e.code)) return e.code;
  }
  return undefined;
}

/** OpenSSL's codes for an answer that is no TLS record: what an HTTPS request gets from a plain HTTP server. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

/** Whether an HTTPS exchange failed because the server answered in plain HTTP (not TLS). */
export function plainHttpAnswer(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && NOT_TLS.has(e.code)) return true;
  }
  return false;
}

/** The innermost message of an error's cause chain (undici says only "fetch failed" on top). */
export function rootCause(err: unknown): string {
  let e = err as { message?: string; cause?: unknown; code?: string };
  for (let i = 0; e.cause && typeof e.cause === 'object' && i < 5; i++) e = e.cause as typeof e;
  // One line: OpenSSL's messages end in a newline, and some carry more lines.
  const msg = (e.message || String(err)).trim().split('\n')[0]!;
  return e.code && !msg.includes(e.code) ? `${msg} (${e.code})` : msg;
}
