import { setTimeout as sleep } from 'node:timers/promises';
import { OciToolError } from '../util/errors.js';
import { parseChallenges, pickChallenge, type Challenge } from './auth/challenge.js';
import type { Credential } from './auth/credentials.js';
import { RegistryError, describeStatus, parseErrorBody, parseRetryAfter } from './errors.js';

export interface RegistryHttpOptions {
  credential?: Credential;
  /** Allow plain HTTP for any host (loopback hosts use it anyway, as docker does). */
  insecure?: boolean;
  /** Attempts for requests that can be repeated (default 4). */
  attempts?: number;
  /** First backoff in ms (default 500), doubled each time with jitter. */
  backoffMs?: number;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** A body: a buffer (sent again on a retry), or a stream to send once. */
  body?: Buffer | (() => NonNullable<RequestInit['body']>);
  /** Scopes the request needs, e.g. `repository:foo/bar:pull`. */
  scopes: string[];
  /** What the request is about, for error messages. */
  what: string;
  /** Statuses that count as success (default 2xx). */
  ok?: (status: number) => boolean;
}

interface CachedToken {
  header: string;
  expires: number;
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/;

/** The scheme for a registry host: http for loopback (as docker does) or when insecure, else https. */
export function registryScheme(host: string, insecure = false): 'http' | 'https' {
  return insecure || LOOPBACK.test(host) || host.endsWith('.localhost') ? 'http' : 'https';
}

/**
 * HTTP to one registry: authentication (Basic, or Bearer tokens fetched per scope and cached until
 * they expire), redirects followed by hand so that Authorization never reaches another origin, and
 * retries with backoff on connection errors, 408, 429 (honouring Retry-After) and 5xx.
 */
export class RegistryHttp {
  readonly base: string;
  private readonly tokens = new Map<string, CachedToken>();
  private basic?: string;

  constructor(
    readonly host: string,
    private readonly opts: RegistryHttpOptions = {},
  ) {
    const apiHost = host === 'docker.io' ? 'registry-1.docker.io' : host;
    this.base = `${registryScheme(apiHost, opts.insecure)}://${apiHost}`;
  }

  async request(method: string, pathOrUrl: string, ro: RequestOptions): Promise<Response> {
    const attempts = Math.max(1, this.opts.attempts ?? 4);
    const repeatable = ro.body === undefined || Buffer.isBuffer(ro.body);
    let reauthed = false;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.send(method, new URL(pathOrUrl, this.base), ro);
      } catch (err) {
        if (attempt < attempts && repeatable && !(err instanceof OciToolError)) {
          await this.backoff(attempt);
          continue;
        }
        if (err instanceof OciToolError) throw err;
        throw new OciToolError('IO', `${this.host}: ${ro.what}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`, { cause: err });
      }
      if (res.status === 401 && !reauthed) {
        const challenges = parseChallenges(res.headers.get('www-authenticate'));
        await res.body?.cancel();
        const c = pickChallenge(challenges);
        if (c && (await this.authenticate(c, ro.scopes))) {
          reauthed = true;
          continue;
        }
        throw await this.fail(res, ro, 'no credentials for this registry');
      }
      if ((ro.ok ?? ((s: number) => s >= 200 && s < 300))(res.status)) return res;
      const err = await this.fail(res, ro);
      if (err.retryable && attempt < attempts && repeatable) {
        await this.backoff(attempt, err.retryAfter);
        continue;
      }
      throw err;
    }
  }

  private async send(method: string, url: URL, ro: RequestOptions): Promise<Response> {
    const origin = url.origin;
    let target = url;
    for (let hop = 0; hop < 10; hop++) {
      const headers: Record<string, string> = { ...(ro.headers ?? {}) };
      if (target.origin === origin) {
        const auth = this.authHeader(ro.scopes);
        if (auth) headers.authorization = auth;
      }
      const body = ro.body === undefined ? undefined : Buffer.isBuffer(ro.body) ? ro.body : ro.body();
      const res = await fetch(target, { method, headers, redirect: 'manual', ...(body !== undefined ? { body, duplex: 'half' } : {}) } as RequestInit);
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel();
        target = new URL(res.headers.get('location')!, target);
        if (method !== 'GET' && method !== 'HEAD') return res; // uploads handle Location themselves
        continue;
      }
      return res;
    }
    throw new OciToolError('REGISTRY', `${this.host}: too many redirects`);
  }

  private authHeader(scopes: string[]): string | undefined {
    if (this.basic) return this.basic;
    const t = this.tokens.get(scopeKey(scopes));
    return t && t.expires > Date.now() ? t.header : undefined;
  }

  /** Answers a challenge; returns whether there is now something new to send. */
  private async authenticate(c: Challenge, scopes: string[]): Promise<boolean> {
    const cred = this.opts.credential;
    if (c.scheme === 'basic') {
      if (!cred?.username || cred.password === undefined || this.basic) return false;
      this.basic = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      return true;
    }
    if (c.scheme !== 'bearer' || !c.params.realm) return false;
    const token = await this.fetchToken(c, scopes);
    if (!token) return false;
    this.tokens.set(scopeKey(scopes), token);
    return true;
  }

  private async fetchToken(c: Challenge, scopes: string[]): Promise<CachedToken | undefined> {
    const cred = this.opts.credential;
    const realm = new URL(c.params.realm!);
    let res: Response;
    if (cred?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'ocitool', scope: scopes.join(' ') });
      if (c.params.service) form.set('service', c.params.service);
      res = await fetch(realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    } else {
      if (c.params.service) realm.searchParams.set('service', c.params.service);
      for (const s of scopes) realm.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (cred?.username && cred.password !== undefined) {
        headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
        realm.searchParams.set('account', cred.username);
      }
      res = await fetch(realm, { headers });
    }
    const text = await res.text();
    if (!res.ok) {
      throw new RegistryError(`${this.host}: token server ${realm.origin} refused ${cred?.username ? `user ${cred.username}` : 'anonymous access'}: ${describeStatus(res.status, parseErrorBody(text))}`, res.status === 404 ? 400 : res.status, parseErrorBody(text));
    }
    let v: { token?: string; access_token?: string; expires_in?: number };
    try {
      v = JSON.parse(text) as typeof v;
    } catch {
      throw new OciToolError('REGISTRY', `${this.host}: token server ${realm.origin} sent no JSON`);
    }
    const token = v.token ?? v.access_token;
    if (!token) return undefined;
    const seconds = Math.max(60, v.expires_in ?? 60);
    return { header: `Bearer ${token}`, expires: Date.now() + (seconds - 10) * 1000 };
  }

  private async fail(res: Response, ro: RequestOptions, hint?: string): Promise<RegistryError> {
    const text = await res.text().catch(() => '');
    const errors = parseErrorBody(text);
    let why = describeStatus(res.status, errors);
    if (res.status === 401) {
      why += this.opts.credential ? ` for ${this.opts.credential.username ?? 'the identity token'} (from ${this.opts.credential.source})` : ` (${hint ?? 'no credentials'}; use --creds or docker login)`;
    }
    if (res.status === 403 || errors.some((e) => e.code === 'DENIED')) why += ` (scope ${ro.scopes.join(' ')})`;
    return new RegistryError(`${this.host}: ${ro.what}: ${why}`, res.status, errors, parseRetryAfter(res.headers.get('retry-after')));
  }

  private async backoff(attempt: number, retryAfter?: number): Promise<void> {
    const base = this.opts.backoffMs ?? 500;
    const ms = retryAfter !== undefined ? Math.min(retryAfter * 1000, 60_000) : base * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
    await sleep(ms);
  }
}

const scopeKey = (scopes: string[]): string => [...scopes].sort().join(' ');
