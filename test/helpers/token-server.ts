/**
 * A bearer-token server written for the tests, as distribution's token auth expects one: it signs JWTs
 * (ES256) with a P-256 key it generates, and the registry trusts the key's self-signed certificate
 * through `auth.token.rootcertbundle`.
 *
 * How distribution 2.8 finds the signing key (registry/auth/token/token.go, VerifySigningKey): it
 * tries, in order, the `x5c` header (a chain whose leaf must verify up to a certificate of the
 * bundle; the leaf's key is the signing key), a `jwk` header, then `kid`, looked up among the public
 * keys of the bundle's certificates by their libtrust key ID (see libtrustKeyId). Either x5c or kid
 * works; keyHint chooses. Other rules it applies: `iss` equal to auth.token.issuer, `aud` a single
 * string equal to auth.token.service (a JSON array is a malformed token in 2.8), `exp`/`nbf` with
 * 60 s of leeway, and `alg` ES256 for a P-256 key with an r||s (IEEE P1363) signature.
 *
 * Endpoints (path /token):
 *   GET  ?service=&scope=&scope=&account=   optional `Authorization: Basic` (wrong credentials: 401)
 *   POST grant_type=password (username, password[, access_type=offline]) | grant_type=refresh_token
 * Anonymous clients get a token with no access (the registry then answers 401 insufficient_scope),
 * or pull only with allowAnonymousPull. Known users get every action they ask for.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createSign, generateKeyPairSync, KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequest {
  method: 'GET' | 'POST' | string;
  /** Scopes asked for, e.g. `repository:smoke/img:pull,push`. */
  scopes: string[];
  /** True when valid credentials (Basic, password grant, or a refresh token) came with the request. */
  authenticated: boolean;
  /** The user, when authenticated. */
  user?: string;
  /** The `account` query parameter, if any. */
  account?: string;
  /** The `service` parameter, if any. */
  service?: string;
  /** POST only. */
  grantType?: string;
  /** What the token granted (empty on a refusal). */
  granted: Access[];
  /** HTTP status answered. */
  status: number;
}

export interface TokenServerOptions {
  /** Directory for the key and certificate (PEM); the caller removes it. */
  dir: string;
  service: string;
  issuer: string;
  /** user -> password */
  users: Record<string, string>;
  /** Anonymous clients get pull access (default: nothing). */
  allowAnonymousPull?: boolean;
  /** Token lifetime in seconds, in `exp` and in the response's expires_in (default 300). */
  expiresIn?: number;
  /** How a token names its signing key: 'x5c' (certificate chain, default) or 'kid' (libtrust key ID). */
  keyHint?: 'x5c' | 'kid';
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * libtrust's key ID, as distribution 2.8 computes it for `kid`: SHA-256 of the DER
 * SubjectPublicKeyInfo, first 240 bits, RFC 4648 base32 without padding, in 12 groups of 4 joined by ':'.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const bytes = createHash('sha256').update(spki).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  // 240 bits are exactly 48 characters: no remainder, no padding.
  return out.match(/.{1,4}/g)!.join(':');
}

export interface SignOptions {
  /** Sign with this key instead of the server's (to forge tokens). */
  key?: KeyObject;
  /** Header key hint (default: the server's keyHint). */
  keyHint?: 'x5c' | 'kid';
  /** Claims to override (iss, aud, exp, nbf, ...). */
  claims?: Record<string, unknown>;
}

export class TokenServer {
  /** Every /token request, in order. */
  readonly requests: TokenRequest[] = [];
  /** PEM file of the certificate the registry must trust (rootcertbundle). */
  readonly certFile: string;
  /** The libtrust key ID of the signing key (the `kid` header in 'kid' mode). */
  readonly keyId: string;
  /** Token lifetime in seconds; may be changed between requests (e.g. to force expiry). */
  expiresIn: number;
  /** Anonymous clients get pull access; may be changed between requests. */
  allowAnonymousPull: boolean;
  /** `http://127.0.0.1:PORT/token`, set by start(). */
  url = '';
  private readonly key: KeyObject;
  private readonly certDer: Buffer;
  private readonly refreshTokens = new Map<string, string>();
  private server?: Server;

  constructor(private readonly opts: TokenServerOptions) {
    this.expiresIn = opts.expiresIn ?? 300;
    this.allowAnonymousPull = opts.allowAnonymousPull ?? false;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.key = privateKey;
    this.keyId = libtrustKeyId(publicKey);
    const keyFile = join(opts.dir, 'token-key.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    this.certFile = join(opts.dir, 'token-cert.pem');
    execFileSync('openssl', ['req', '-x509', '-new', '-key', keyFile, '-subj', '/CN=ocitool-test-token', '-days', '3650', '-out', this.certFile], { stdio: 'pipe' });
    this.certDer = Buffer.from(new X509Certificate(readFileSync(this.certFile)).raw);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(0, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Signs a token for `sub` granting `access`; public so tests can mint or forge tokens (a bare KeyObject = { key }). */
  sign(sub: string, access: Access[], options: SignOptions | KeyObject = {}): string {
    const o: SignOptions = options instanceof KeyObject ? { key: options } : options;
    const now = Math.floor(Date.now() / 1000);
    const hint = o.keyHint ?? this.opts.keyHint ?? 'x5c';
    const header = { typ: 'JWT', alg: 'ES256', ...(hint === 'kid' ? { kid: this.keyId } : { x5c: [this.certDer.toString('base64')] }) };
    const claims = {
      iss: this.opts.issuer,
      sub,
      aud: this.opts.service,
      exp: now + this.expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
      ...o.claims,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('SHA256')
      .update(input)
      .sign({ key: o.key ?? this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }

  /** Parses `type:name:actions` scopes; the name is what lies between the first and the last ':'. */
  private grant(scopes: string[], user: string | undefined): Access[] {
    const out: Access[] = [];
    for (const scope of scopes) {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) continue;
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const wanted = [...new Set(scope.slice(last + 1).split(',').filter(Boolean))];
      const actions = user !== undefined ? wanted : this.allowAnonymousPull && type === 'repository' ? wanted.filter((a) => a === 'pull') : [];
      if (actions.length > 0) out.push({ type, name, actions });
    }
    return out;
  }

  private checkPassword(user: string, password: string | null): boolean {
    return Object.hasOwn(this.opts.users, user) && this.opts.users[user] === password;
  }

  /** undefined: no Basic header; false: wrong credentials; else the user. */
  private basicUser(req: IncomingMessage): string | undefined | false {
    const h = req.headers.authorization;
    if (!h || !/^basic /i.test(h)) return undefined;
    const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString();
    const i = decoded.indexOf(':');
    if (i < 0) return false;
    const user = decoded.slice(0, i);
    return this.checkPassword(user, decoded.slice(i + 1)) ? user : false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token') return void res.writeHead(404).end();
    const method = req.method ?? 'GET';
    let user: string | undefined;
    let scopes: string[];
    let offline = false;
    const rec: Omit<TokenRequest, 'scopes' | 'granted' | 'status' | 'authenticated'> = { method };
    if (method === 'POST') {
      let body = '';
      for await (const c of req) body += (c as Buffer).toString();
      const form = new URLSearchParams(body);
      scopes = form.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const grantType = form.get('grant_type') ?? '';
      rec.grantType = grantType;
      const service = form.get('service');
      if (service !== null) rec.service = service;
      if (grantType === 'password') {
        const u = form.get('username') ?? '';
        if (!this.checkPassword(u, form.get('password'))) return this.refuse(res, { ...rec, scopes }, 401, 'invalid username or password');
        user = u;
        offline = form.get('access_type') === 'offline';
      } else if (grantType === 'refresh_token') {
        user = this.refreshTokens.get(form.get('refresh_token') ?? '');
        if (user === undefined) return this.refuse(res, { ...rec, scopes }, 401, 'unknown refresh token');
      } else return this.refuse(res, { ...rec, scopes }, 400, 'unsupported grant_type');
    } else if (method === 'GET') {
      scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      const account = url.searchParams.get('account');
      if (account !== null) rec.account = account;
      const service = url.searchParams.get('service');
      if (service !== null) rec.service = service;
      const basic = this.basicUser(req);
      if (basic === false) return this.refuse(res, { ...rec, scopes }, 401, 'invalid username or password');
      user = basic;
      offline = url.searchParams.get('offline_token') === 'true';
    } else {
      return void res.writeHead(405, { allow: 'GET, POST' }).end();
    }
    const granted = this.grant(scopes, user);
    this.requests.push({ ...rec, scopes, authenticated: user !== undefined, ...(user !== undefined ? { user } : {}), granted, status: 200 });
    const token = this.sign(user ?? '', granted);
    const reply: Record<string, unknown> = { token, access_token: token, expires_in: this.expiresIn, issued_at: new Date().toISOString() };
    if (method === 'POST') reply.scope = scopes.join(' ');
    if (offline && user !== undefined) {
      const rt = randomBytes(16).toString('hex');
      this.refreshTokens.set(rt, user);
      reply.refresh_token = rt;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  }

  private refuse(res: ServerResponse, rec: Omit<TokenRequest, 'granted' | 'status' | 'authenticated'>, status: number, message: string): void {
    this.requests.push({ ...rec, authenticated: false, granted: [], status });
    const body = status === 400 ? { error: 'unsupported_grant_type', error_description: message } : { errors: [{ code: 'UNAUTHORIZED', message }] };
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 401 ? { 'www-authenticate': 'Basic realm="ocitool-test-token"' } : {}) }).end(JSON.stringify(body));
  }
}
