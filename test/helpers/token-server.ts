/**
 * A bearer-token server written for the tests, as distribution's token auth expects one: it signs JWTs
 * (ES256) with a key it generates, and presents its self-signed certificate in each token's `x5c`
 * header; the registry trusts that certificate through `rootcertbundle`.
 */
import { execFileSync } from 'node:child_process';
import { createSign, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface TokenRequest {
  method: string;
  scopes: string[];
  /** The user, when Basic credentials or a refresh token were given and valid. */
  user?: string;
  granted: { type: string; name: string; actions: string[] }[];
}

export interface TokenServerOptions {
  dir: string;
  service: string;
  issuer: string;
  users: Record<string, string>;
  /** Anonymous clients get pull access (default: nothing). */
  allowAnonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export class TokenServer {
  readonly requests: TokenRequest[] = [];
  /** PEM file of the certificate the registry must trust. */
  readonly certFile: string;
  private readonly key: KeyObject;
  private readonly certDer: Buffer;
  private readonly refreshTokens = new Map<string, string>();
  private server?: Server;
  url = '';

  constructor(private readonly opts: TokenServerOptions) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.key = privateKey;
    const keyFile = join(opts.dir, 'token-key.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    this.certFile = join(opts.dir, 'token-cert.pem');
    execFileSync('openssl', ['req', '-x509', '-new', '-key', keyFile, '-subj', '/CN=ocitool-test-token', '-days', '3650', '-out', this.certFile], { stdio: 'pipe' });
    this.certDer = Buffer.from(new X509Certificate(readFileSync(this.certFile)).raw);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** Signs a token granting `access`; exported so tests can forge tokens with another key. */
  sign(sub: string, access: TokenRequest['granted'], key: KeyObject = this.key, certDer: Buffer = this.certDer): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer.toString('base64')] };
    const claims = { iss: this.opts.issuer, sub, aud: this.opts.service, exp: now + (this.opts.expiresIn ?? 300), nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('SHA256').update(input).sign({ key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }

  private grant(scopes: string[], user: string | undefined): TokenRequest['granted'] {
    const out: TokenRequest['granted'] = [];
    for (const scope of scopes) {
      // resourcetype:name:actions — the name may itself hold ':' (host:port), so split at both ends.
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first < 0 || last === first) continue;
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const wanted = scope.slice(last + 1).split(',').filter(Boolean);
      const actions = user !== undefined ? wanted : this.opts.allowAnonymousPull ? wanted.filter((a) => a === 'pull') : [];
      if (actions.length > 0) out.push({ type, name, actions });
    }
    return out;
  }

  private basicUser(req: IncomingMessage): string | undefined | false {
    const h = req.headers.authorization;
    if (!h?.startsWith('Basic ')) return undefined;
    const decoded = Buffer.from(h.slice(6), 'base64').toString();
    const i = decoded.indexOf(':');
    const user = decoded.slice(0, i);
    return this.opts.users[user] !== undefined && this.opts.users[user] === decoded.slice(i + 1) ? user : false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token') return void res.writeHead(404).end();
    let user: string | undefined;
    let scopes: string[];
    let offline = false;
    if (req.method === 'POST') {
      let body = '';
      for await (const c of req) body += (c as Buffer).toString();
      const form = new URLSearchParams(body);
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      if (form.get('grant_type') === 'password') {
        const u = form.get('username') ?? '';
        if (this.opts.users[u] === undefined || this.opts.users[u] !== form.get('password')) return this.deny(res, req, scopes);
        user = u;
        offline = form.get('access_type') === 'offline';
      } else if (form.get('grant_type') === 'refresh_token') {
        user = this.refreshTokens.get(form.get('refresh_token') ?? '');
        if (user === undefined) return this.deny(res, req, scopes);
      } else return void res.writeHead(400).end('unsupported grant_type');
    } else {
      scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const basic = this.basicUser(req);
      if (basic === false) return this.deny(res, req, scopes);
      user = basic;
    }
    const granted = this.grant(scopes, user);
    this.requests.push({ method: req.method ?? 'GET', scopes, ...(user !== undefined ? { user } : {}), granted });
    const token = this.sign(user ?? '', granted);
    const reply: Record<string, unknown> = { token, access_token: token, expires_in: this.opts.expiresIn ?? 300, issued_at: new Date().toISOString() };
    if (req.method === 'POST') reply.scope = scopes.join(' ');
    if (offline && user !== undefined) {
      const rt = randomBytes(16).toString('hex');
      this.refreshTokens.set(rt, user);
      reply.refresh_token = rt;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  }

  private deny(res: ServerResponse, req: IncomingMessage, scopes: string[]): void {
    this.requests.push({ method: req.method ?? 'GET', scopes, granted: [] });
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
  }
}
