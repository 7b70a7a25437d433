import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request as undiciRequest, type Dispatcher } from './undici.js';
import { OciToolError } from '../util/errors.js';
import { parseChallenges, pickChallenge, type Challenge } from './auth/challenge.js';
import type { Credential } from './auth/credentials.js';
import { RegistryError, describeStatus, parseErrorBody, parseRetryAfter, retryableStatus } from './errors.js';
import { certificateError, dispatcherFor, isLoopbackHost, plainHttpAnswer, transferFailure } from './network.js';
import { HttpResponse } from './response.js';
import { registryTimeoutMs } from './timeout.js';
import { StreamedBody } from './streamed-body.js';

export interface RegistryHttpOptions {
  credential?: Credential;
  /** Allow plain HTTP and unverified TLS for any host (loopback hosts may use plain HTTP anyway, as with docker). */
  insecure?: boolean;
  /** Attempts for requests that can be repeated (default 4). */
  attempts?: number;
  /** First backoff in ms (default 500), doubled each time with jitter. */
  backoffMs?: number;
  /** The request bound in ms (see timeout.ts; default: the process-wide one, `--timeout`). */
  timeoutMs?: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /**
   * A body. A buffer is sent again on a retry; a stream is sent once (read ahead of the socket, see
   * StreamedBody), so a request with one is never retried here: the caller recovers.
   */
  body?: Buffer | Readable;
  /** Scopes the request needs, e.g. `repository:foo/bar:pull`. */
  scopes: string[];
  /** What the request is about, for error messages. */
  what: string;
  /** Statuses that count as success (default 2xx). */
  ok?: (status: number) => boolean;
  signal?: AbortSignal;
  /** Attempts for this request (default: the registry's setting); 1 leaves recovery to the caller. */
  attempts?: number;
}

/** A token server's answer larger than this is refused. */
const MAX_TOKEN_BODY = 1024 * 1024;

interface SendInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
  /** Wait for the answer's headers at most this long (default: the request bound). */
  headersTimeout?: number;
}

interface CachedToken {
  header: string;
  expires: number;
}

/**
 * The scheme to try first for a registry host: https, unless plain http is allowed (loopback, or
 * `--insecure`) — then https is still tried first and http is the fallback, as docker does.
 */
export function mayUseHttp(host: string, insecure = false): boolean {
  return insecure || isLoopbackHost(host.replace(/:\d+$/, ''));
}

/** What base() found, by `apiHost insecure|verified`. */
const probedBases = new Map<string, Promise<string>>();

/**
 * HTTP to one registry over undici (keep-alive pools, proxies from the environment, timeouts):
 * authentication (Basic, or Bearer tokens fetched per scope, cached and refreshed before they
 * expire), redirects followed by hand so that Authorization never reaches another origin, and
 * retries with backoff and jitter on connection errors, 408, 429 (honouring Retry-After) and 5xx.
 */
export class RegistryHttp {
  /** The host requests go to (docker.io's API lives at registry-1.docker.io). */
  readonly apiHost: string;
  private basePromise?: Promise<string>;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Promise<CachedToken | undefined>>();
  /** The last Bearer challenge: lets an expired token be renewed before a request instead of after a 401. */
  private bearer?: Challenge;
  private basic?: string;

  constructor(
    readonly host: string,
    private readonly opts: RegistryHttpOptions = {},
  ) {
    this.apiHost = host === 'docker.io' ? 'registry-1.docker.io' : host;
  }

  private get insecure(): boolean {
    return this.opts.insecure ?? false;
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? registryTimeoutMs();
  }

  /**
   * `https://host` or, for a host allowed plain HTTP that does not speak TLS, `http://host`. Found
   * once per process and host (a sync of many repositories on one registry probes it once).
   */
  base(): Promise<string> {
    const key = `${this.apiHost} ${this.insecure ? 'insecure' : 'verified'}`;
    this.basePromise ??=
      probedBases.get(key) ??
      this.probe().catch((err: unknown) => {
        this.basePromise = undefined; // let a later request try again
        probedBases.delete(key);
        throw err;
      });
    if (!probedBases.has(key)) probedBases.set(key, this.basePromise);
    return this.basePromise;
  }

  private async probe(): Promise<string> {
    const https = `https://${this.apiHost}`;
    if (!mayUseHttp(this.apiHost, this.insecure)) return https;
    try {
      const res = await this.fetch(new URL('/v2/', https), { method: 'GET', signal: AbortSignal.timeout(Math.min(10_000, this.timeoutMs)) }, `${this.host}: ping`);
      await res.cancel();
      return https;
    } catch (err) {
      const cert = certificateError(err);
      if (cert) throw this.certFailure(cert);
      return `http://${this.apiHost}`;
    }
  }

  /**
   * An HTTPS request answered in plain HTTP: final (no retry helps) and one line. Only for hosts not
   * allowed plain HTTP (the others fall back to it in probe()).
   */
  private plainHttpFailure(label: string): OciToolError {
    return new OciToolError('REGISTRY', `${label}: the registry speaks plain HTTP, not HTTPS: use --insecure (or --tls-verify=false) to allow it`);
  }

  private certFailure(code: string): OciToolError {
    return new OciToolError('REGISTRY', `${this.host}: TLS certificate not trusted (${code}); add its CA with NODE_EXTRA_CA_CERTS, or use --insecure`);
  }

  private async fetch(url: URL, init: SendInit, label: string): Promise<HttpResponse> {
    const streamed = init.body instanceof Readable ? new StreamedBody(init.body) : undefined;
    const body = streamed ?? init.body;
    try {
      const raw = await undiciRequest(url, {
        method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: init.headers ?? {},
        ...(body !== undefined ? { body } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
        headersTimeout: init.headersTimeout ?? this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        dispatcher: dispatcherFor(url, this.insecure, this.timeoutMs),
      });
      return new HttpResponse(raw, url.href, label, this.timeoutMs);
    } catch (err) {
      // The stream's own failure (a digest mismatch) is the cause, not the request undici gave up.
      throw streamed?.failure ?? err;
    }
  }

  /**
   * Sends a request, with retries. The request bound (`timeoutMs`) covers every attempt: each waits
   * for an answer only as long as the bound has left, and no retry starts that could not get a fair
   * share of it, so a registry that never answers costs the bound once, not once per attempt.
   */
  async request(method: string, pathOrUrl: string, ro: RequestOptions): Promise<HttpResponse> {
    const streamed = ro.body instanceof Readable;
    const attempts = streamed ? 1 : Math.max(1, ro.attempts ?? this.opts.attempts ?? 4);
    const timeout = this.timeoutMs;
    let reauthed = false;
    const sent: { auth?: string } = {};
    const url = new URL(pathOrUrl, await this.base());
    const label = `${this.host}: ${ro.what}`;
    const deadline = Date.now() + timeout;
    const minAttempt = Math.min(1_000, timeout / 4);
    const mayRetry = (attempt: number, waitMs: number): boolean => attempt < attempts && deadline - Date.now() - waitMs >= minAttempt;
    for (let attempt = 1; ; attempt++) {
      ro.signal?.throwIfAborted();
      let res: HttpResponse;
      try {
        res = await this.send(method, url, ro, label, Math.max(deadline - Date.now(), minAttempt), sent);
      } catch (err) {
        if (err instanceof OciToolError) throw err;
        if (ro.signal?.aborted) throw ro.signal.reason;
        const cert = certificateError(err);
        if (cert) throw this.certFailure(cert);
        if (plainHttpAnswer(err)) throw this.plainHttpFailure(this.host);
        const wait = this.backoffMs(attempt);
        if (mayRetry(attempt, wait)) {
          await sleep(wait, undefined, ro.signal ? { signal: ro.signal } : {});
          continue;
        }
        throw transferFailure(label, err, timeout);
      }
      if (res.status === 401 && !reauthed && !streamed) {
        const c = pickChallenge(parseChallenges(res.headers.get('www-authenticate')));
        if (c && (await this.authenticate(c, ro.scopes, sent))) {
          await res.cancel();
          reauthed = true;
          continue;
        }
        throw await this.fail(res, ro, 'no credentials for this registry');
      }
      if ((ro.ok ?? ((s: number) => s >= 200 && s < 300))(res.status)) return res;
      const err = await this.fail(res, ro);
      const wait = this.backoffMs(attempt, err.retryAfter);
      if (retryableStatus(res.status) && mayRetry(attempt, wait)) {
        await sleep(wait, undefined, ro.signal ? { signal: ro.signal } : {});
        continue;
      }
      throw err;
    }
  }

  /** Sends one attempt (following redirects); `sent.auth` says which Authorization the registry got. */
  private async send(method: string, url: URL, ro: RequestOptions, label: string, waitMs: number, sent: { auth?: string }): Promise<HttpResponse> {
    // The one rule for credentials, on every request and every hop: only the registry's own origin
    // (scheme, host and port) gets them, never an upload Location or a redirect that names another.
    const home = new URL(await this.base()).origin;
    let target = url;
    for (let hop = 0; hop < 10; hop++) {
      const headers: Record<string, string> = { 'user-agent': 'ocitool', ...(ro.headers ?? {}) };
      if (target.origin === home) {
        const auth = await this.authHeader(ro.scopes);
        sent.auth = auth;
        if (auth) headers.authorization = auth;
      }
      const res = await this.fetch(target, { method, headers, ...(ro.body !== undefined ? { body: ro.body } : {}), ...(ro.signal ? { signal: ro.signal } : {}), headersTimeout: waitMs }, label);
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        if (method !== 'GET' && method !== 'HEAD') return res; // uploads handle Location themselves
        await res.cancel();
        target = new URL(res.headers.get('location')!, target);
        continue;
      }
      return res;
    }
    throw new OciToolError('REGISTRY', `${label}: too many redirects`);
  }

  private async authHeader(scopes: string[]): Promise<string | undefined> {
    if (this.basic) return this.basic;
    const t = this.tokens.get(scopeKey(scopes));
    if (t && t.expires > Date.now()) return t.header;
    // Expired (or never asked for these scopes): renew now rather than after a 401.
    if (this.bearer && (await this.authenticate(this.bearer, scopes).catch(() => false))) return this.tokens.get(scopeKey(scopes))?.header;
    return undefined;
  }

  /**
   * Answers a challenge; returns whether there is now something new to send. `refused` is set after a
   * 401: what that request carried (a token renewed since by another request is simply used).
   */
  private async authenticate(c: Challenge, scopes: string[], refused?: { auth?: string }): Promise<boolean> {
    const cred = this.opts.credential;
    if (c.scheme === 'basic') {
      if (this.basic) return refused !== undefined && refused.auth !== this.basic; // set since by another request
      if (!cred?.username || cred.password === undefined) return false;
      this.basic = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      return true;
    }
    if (c.scheme !== 'bearer' || !c.params.realm) return false;
    this.bearer = c;
    // Requests that start together with no token share one token request (not one each).
    const key = scopeKey(scopes);
    const cached = this.tokens.get(key);
    if (refused && cached && cached.expires > Date.now() && cached.header !== refused.auth) return true;
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.fetchToken(c, scopes).finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    const token = await pending;
    if (!token) return false;
    this.tokens.set(key, token);
    // After a 401 a token identical to the one refused changes nothing.
    return !(refused && refused.auth === token.header);
  }

  private async fetchToken(c: Challenge, scopes: string[]): Promise<CachedToken | undefined> {
    const cred = this.opts.credential;
    const realm = new URL(c.params.realm!);
    const label = `${this.host}: token server ${realm.origin}`;
    let res: HttpResponse;
    try {
      if (cred?.identityToken) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'ocitool', scope: scopes.join(' ') });
        if (c.params.service) form.set('service', c.params.service);
        res = await this.fetch(realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() }, label);
      } else {
        if (c.params.service) realm.searchParams.set('service', c.params.service);
        for (const s of scopes) realm.searchParams.append('scope', s);
        const headers: Record<string, string> = {};
        if (cred?.username && cred.password !== undefined) {
          headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
          realm.searchParams.set('account', cred.username);
        }
        res = await this.fetch(realm, { headers }, label);
      }
    } catch (err) {
      const cert = certificateError(err);
      if (cert) throw new OciToolError('IO', `${label}: TLS certificate not trusted (${cert})`, { cause: err });
      if (plainHttpAnswer(err)) throw new OciToolError('REGISTRY', `${label}: speaks plain HTTP, but the registry names an https:// token realm`);
      throw transferFailure(label, err, this.timeoutMs);
    }
    if (!res.ok) {
      const errors = parseErrorBody(await res.head());
      throw new RegistryError(`${label} refused ${cred?.username ? `user ${cred.username} (from ${cred.source})` : cred?.identityToken ? `the identity token (from ${cred.source})` : 'anonymous access'}: ${describeStatus(res.status, errors)}`, res.status === 404 ? 400 : res.status, errors);
    }
    let v: { token?: string; access_token?: string; expires_in?: number };
    try {
      v = JSON.parse((await res.bytes(MAX_TOKEN_BODY)).toString('utf8')) as typeof v;
    } catch (err) {
      if (err instanceof OciToolError) throw err;
      throw new OciToolError('REGISTRY', `${label} sent no JSON`);
    }
    const token = v.token ?? v.access_token;
    if (!token) return undefined;
    // Renew a little before the stated lifetime (60 s when none is stated, as the spec says).
    const seconds = v.expires_in && v.expires_in > 0 ? v.expires_in : 60;
    return { header: `Bearer ${token}`, expires: Date.now() + Math.max(seconds * 0.9, seconds - 30) * 1000 };
  }

  private async fail(res: HttpResponse, ro: RequestOptions, hint?: string): Promise<RegistryError> {
    const errors = parseErrorBody(await res.head());
    let why = describeStatus(res.status, errors);
    if (res.status === 401) {
      // A token without the actions asked for: the registry names the scope it wanted.
      const c = parseChallenges(res.headers.get('www-authenticate')).find((x) => x.params.error === 'insufficient_scope');
      if (c) why = `the token lacks scope ${c.params.scope ?? ro.scopes.join(' ')} (401 insufficient_scope)`;
      why += this.opts.credential ? ` for ${this.opts.credential.username ?? 'the identity token'} (from ${this.opts.credential.source})` : ` (${hint ?? 'no credentials'}; run ocitool login ${this.host}, or use --creds)`;
    }
    if (res.status === 403 || errors.some((e) => e.code === 'DENIED')) why += ` (scope ${ro.scopes.join(' ')})`;
    return new RegistryError(`${this.host}: ${ro.what}: ${why}`, res.status, errors, parseRetryAfter(res.headers.get('retry-after')));
  }

  /** The wait before attempt `attempt + 1`: Retry-After if given, else exponential with jitter. */
  private backoffMs(attempt: number, retryAfter?: number): number {
    const base = this.opts.backoffMs ?? 500;
    return retryAfter !== undefined ? Math.min(retryAfter * 1000, 60_000) : base * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
  }
}

const scopeKey = (scopes: string[]): string => [...scopes].sort().join(' ');
