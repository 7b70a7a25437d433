import { describe, expect, it } from 'vitest';
import { certificateError, isLoopbackHost, noProxyMatches, plainHttpAnswer, proxyEnvFrom, proxyFor, rootCause } from './network.js';

describe('isLoopbackHost', () => {
  it.each([
    ['localhost', true],
    ['LOCALHOST', true],
    ['registry.localhost', true],
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['[::1]', true],
    ['::1', true],
    ['128.0.0.1', false],
    ['localhost.example.com', false],
    ['10.0.0.1', false],
    ['ghcr.io', false],
  ])('%s → %s', (host, want) => expect(isLoopbackHost(host)).toBe(want));
});

describe('noProxyMatches', () => {
  it.each([
    ['*', 'anything.example', '443', true],
    ['example.com', 'example.com', '443', true],
    ['example.com', 'registry.example.com', '443', true],
    ['.example.com', 'registry.example.com', '443', true],
    ['.example.com', 'example.com', '443', true],
    ['*.example.com', 'a.example.com', '443', true],
    ['example.com', 'notexample.com', '443', false],
    ['example.com:5000', 'example.com', '5000', true],
    ['example.com:5000', 'example.com', '443', false],
    ['10.0.0.0/8', '10.1.2.3', '443', true],
    ['10.0.0.0/8', '11.1.2.3', '443', false],
    ['192.168.1.7', '192.168.1.7', '443', true],
    ['192.168.1.7', '192.168.1.70', '443', false],
    ['foo.com, bar.com', 'x.bar.com', '443', true],
    ['foo.com bar.com', 'bar.com', '443', true],
    ['', 'bar.com', '443', false],
  ])('NO_PROXY=%j, host %s:%s → %s', (np, host, port, want) => expect(noProxyMatches(np, host, port)).toBe(want));
});

describe('proxyFor', () => {
  const env = { httpsProxy: 'http://proxy.corp:3128', httpProxy: 'proxy.corp:8080', noProxy: 'internal.corp,10.0.0.0/8' };
  it('picks HTTPS_PROXY for https and HTTP_PROXY for http (a bare host:port means http://)', () => {
    expect(proxyFor(new URL('https://ghcr.io/v2/'), env)).toBe('http://proxy.corp:3128');
    expect(proxyFor(new URL('http://registry.example:5000/v2/'), env)).toBe('http://proxy.corp:8080');
  });
  it('leaves out NO_PROXY hosts and, always, loopback', () => {
    expect(proxyFor(new URL('https://registry.internal.corp/v2/'), env)).toBeUndefined();
    expect(proxyFor(new URL('https://10.2.3.4/v2/'), env)).toBeUndefined();
    expect(proxyFor(new URL('http://127.0.0.1:5000/v2/'), env)).toBeUndefined();
    expect(proxyFor(new URL('http://localhost:5000/v2/'), env)).toBeUndefined();
  });
  it('connects directly without proxy settings', () => {
    expect(proxyFor(new URL('https://ghcr.io/v2/'), {})).toBeUndefined();
  });
});

describe('proxyEnvFrom', () => {
  it('reads either case, lower case first, empty values ignored', () => {
    expect(proxyEnvFrom({ HTTPS_PROXY: 'http://a:1', http_proxy: 'http://b:2', NO_PROXY: 'x' })).toEqual({ httpsProxy: 'http://a:1', httpProxy: 'http://b:2', noProxy: 'x' });
    expect(proxyEnvFrom({ https_proxy: 'http://low:1', HTTPS_PROXY: 'http://up:1' })).toEqual({ httpsProxy: 'http://low:1' });
    expect(proxyEnvFrom({ https_proxy: '', HTTPS_PROXY: 'http://up:1' })).toEqual({ httpsProxy: 'http://up:1' });
  });
});

describe('error classification', () => {
  it('finds a certificate failure in the cause chain, and the innermost message', () => {
    const err = new TypeError('fetch failed', { cause: Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) });
    expect(certificateError(err)).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(certificateError(new TypeError('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) }))).toBeUndefined();
    expect(rootCause(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) }))).toBe('connect ECONNREFUSED 127.0.0.1:1');
  });

  it("tells an HTTPS request answered in plain HTTP (OpenSSL's codes), and keeps the innermost message to one line", () => {
    const openssl = Object.assign(new Error('805C:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl3_record.c:350:\n'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
    expect(plainHttpAnswer(new TypeError('fetch failed', { cause: openssl }))).toBe(true);
    expect(plainHttpAnswer(Object.assign(new Error('x'), { code: 'ERR_SSL_PACKET_LENGTH_TOO_LONG' }))).toBe(true);
    expect(plainHttpAnswer(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(rootCause(new TypeError('fetch failed', { cause: Object.assign(new Error('first line\nsecond line\n'), { code: 'EX' }) }))).toBe('first line (EX)');
  });
});
