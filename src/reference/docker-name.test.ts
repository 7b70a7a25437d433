import { errorOf } from '../../test/helpers/errors.js';
import { describe, it, expect } from 'vitest';
import {
  familiarName,
  formatDockerReference,
  parseDockerName,
  registryHost,
  repositoryName,
  type DockerReference,
} from './docker-name.js';

const F64 = 'f'.repeat(64);
const SHA256 = `sha256:${F64}`;
const SHA512 = `sha512:${'f'.repeat(128)}`;
const BUSYBOX_DIGEST = 'sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa';
const HEX64 = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';

/** A valid lowercase path of exactly `n` (> 200) characters: 100 one-letter components and a long last one. */
function pathOfLength(n: number): string {
  return 'a/'.repeat(100) + 'b'.repeat(n - 200);
}

type Valid = [input: string, expected: DockerReference];

const valid: Valid[] = [
  // Docker Hub normalisation
  ['ubuntu', { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }],
  ['library/ubuntu', { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }],
  ['docker.io/ubuntu', { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }],
  ['docker.io/library/ubuntu', { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }],
  ['index.docker.io/ubuntu', { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }],
  ['index.docker.io/library/ubuntu:22.04', { domain: 'docker.io', path: 'library/ubuntu', tag: '22.04' }],
  ['index.docker.io/docker/docker', { domain: 'docker.io', path: 'docker/docker', tag: 'latest' }],
  ['ubuntu:22.04', { domain: 'docker.io', path: 'library/ubuntu', tag: '22.04' }],
  ['user/repo', { domain: 'docker.io', path: 'user/repo', tag: 'latest' }],
  ['docker/docker', { domain: 'docker.io', path: 'docker/docker', tag: 'latest' }],
  ['docker/migrator', { domain: 'docker.io', path: 'docker/migrator', tag: 'latest' }],
  ['other/library', { domain: 'docker.io', path: 'other/library', tag: 'latest' }],
  ['library/foo/bar', { domain: 'docker.io', path: 'library/foo/bar', tag: 'latest' }],
  ['docker.io/library/foo/bar', { domain: 'docker.io', path: 'library/foo/bar', tag: 'latest' }],
  ['store/foo/bar', { domain: 'docker.io', path: 'store/foo/bar', tag: 'latest' }],
  ['ubuntu-12.04-base', { domain: 'docker.io', path: 'library/ubuntu-12.04-base', tag: 'latest' }],
  // localhost
  ['localhost/foo', { domain: 'localhost', path: 'foo', tag: 'latest' }],
  ['localhost:5000/foo', { domain: 'localhost:5000', path: 'foo', tag: 'latest' }],
  ['localhost:5000/foo:v1', { domain: 'localhost:5000', path: 'foo', tag: 'v1' }],
  ['localhost', { domain: 'docker.io', path: 'library/localhost', tag: 'latest' }],
  ['localhost:5000', { domain: 'docker.io', path: 'library/localhost', tag: '5000' }],
  // domain detection: '.', ':', localhost or uppercase in the first component
  ['Foo/bar', { domain: 'Foo', path: 'bar', tag: 'latest' }],
  ['FOO/bar', { domain: 'FOO', path: 'bar', tag: 'latest' }],
  ['Docker/docker', { domain: 'Docker', path: 'docker', tag: 'latest' }],
  ['UPPER.example.com/foo', { domain: 'UPPER.example.com', path: 'foo', tag: 'latest' }],
  ['test.com/foo', { domain: 'test.com', path: 'foo', tag: 'latest' }],
  ['test_com/foo', { domain: 'docker.io', path: 'test_com/foo', tag: 'latest' }],
  ['test:8080/foo', { domain: 'test:8080', path: 'foo', tag: 'latest' }],
  ['test-com:8080/foo', { domain: 'test-com:8080', path: 'foo', tag: 'latest' }],
  ['test.com:8080/foo', { domain: 'test.com:8080', path: 'foo', tag: 'latest' }],
  ['host:5000/a/b/c', { domain: 'host:5000', path: 'a/b/c', tag: 'latest' }],
  ['example.com/privatebase', { domain: 'example.com', path: 'privatebase', tag: 'latest' }],
  ['example.com:8000/private/moonbase', { domain: 'example.com:8000', path: 'private/moonbase', tag: 'latest' }],
  ['sub-dom1.foo.com/bar/baz/quux', { domain: 'sub-dom1.foo.com', path: 'bar/baz/quux', tag: 'latest' }],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', { domain: 'sub-dom1.foo.com', path: 'bar/baz/quux', tag: 'some-long-tag' }],
  ['b.gcr.io/test.example.com/my-app:test.example.com', { domain: 'b.gcr.io', path: 'test.example.com/my-app', tag: 'test.example.com' }],
  ['xn--n3h.com/myimage:xn--n3h.com', { domain: 'xn--n3h.com', path: 'myimage', tag: 'xn--n3h.com' }],
  ['xn--n3h.com:18080/foo', { domain: 'xn--n3h.com:18080', path: 'foo', tag: 'latest' }],
  // IPv4 and IPv6
  ['192.168.1.1', { domain: 'docker.io', path: 'library/192.168.1.1', tag: 'latest' }],
  ['192.168.1.1:5000', { domain: 'docker.io', path: 'library/192.168.1.1', tag: '5000' }],
  ['192.168.1.1/repo', { domain: '192.168.1.1', path: 'repo', tag: 'latest' }],
  ['192.168.1.1:5000/repo:5050', { domain: '192.168.1.1:5000', path: 'repo', tag: '5050' }],
  ['127.0.0.1:5000/docker/docker', { domain: '127.0.0.1:5000', path: 'docker/docker', tag: 'latest' }],
  ['127.0.0.1:5000/library/debian', { domain: '127.0.0.1:5000', path: 'library/debian', tag: 'latest' }],
  ['[::1]:5000/x', { domain: '[::1]:5000', path: 'x', tag: 'latest' }],
  ['[2001:db8::1]/repo', { domain: '[2001:db8::1]', path: 'repo', tag: 'latest' }],
  ['[2001:db8::]:5000/repo', { domain: '[2001:db8::]:5000', path: 'repo', tag: 'latest' }],
  ['[2001:db8::1]:5000/repo:tag', { domain: '[2001:db8::1]:5000', path: 'repo', tag: 'tag' }],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', { domain: '[2001:db8:1:2:3:4:5:6]', path: 'repo', tag: 'tag' }],
  ['[fc00:1:2:3:4:5:6:7]:5000/library/debian', { domain: '[fc00:1:2:3:4:5:6:7]:5000', path: 'library/debian', tag: 'latest' }],
  ['[2001:db8::1]:5000/repo@' + SHA256, { domain: '[2001:db8::1]:5000', path: 'repo', digest: SHA256 }],
  // tags
  ['test.com:tag', { domain: 'docker.io', path: 'library/test.com', tag: 'tag' }],
  ['test.com:5000', { domain: 'docker.io', path: 'library/test.com', tag: '5000' }],
  ['foo_bar.com:8080', { domain: 'docker.io', path: 'library/foo_bar.com', tag: '8080' }],
  ['foo/foo_bar.com:8080', { domain: 'docker.io', path: 'foo/foo_bar.com', tag: '8080' }],
  ['lowercase:Uppercase', { domain: 'docker.io', path: 'library/lowercase', tag: 'Uppercase' }],
  ['foo:_underscore-first', { domain: 'docker.io', path: 'library/foo', tag: '_underscore-first' }],
  ['foo:' + 'a'.repeat(128), { domain: 'docker.io', path: 'library/foo', tag: 'a'.repeat(128) }],
  // path components and separators
  ['a__b', { domain: 'docker.io', path: 'library/a__b', tag: 'latest' }],
  ['a--b', { domain: 'docker.io', path: 'library/a--b', tag: 'latest' }],
  ['a.b_c-d', { domain: 'docker.io', path: 'library/a.b_c-d', tag: 'latest' }],
  ['docker-rules/docker', { domain: 'docker.io', path: 'docker-rules/docker', tag: 'latest' }],
  ['docker---rules/docker', { domain: 'docker.io', path: 'docker---rules/docker', tag: 'latest' }],
  ['dock__er/docker', { domain: 'docker.io', path: 'dock__er/docker', tag: 'latest' }],
  ['d/docker', { domain: 'docker.io', path: 'd/docker', tag: 'latest' }],
  ['jess/t', { domain: 'docker.io', path: 'jess/t', tag: 'latest' }],
  ['test_com', { domain: 'docker.io', path: 'library/test_com', tag: 'latest' }],
  // hexadecimal-looking names that are not a bare 64-hex identifier
  [`docker.io/${HEX64}`, { domain: 'docker.io', path: `library/${HEX64}`, tag: 'latest' }],
  [`${HEX64}:tag`, { domain: 'docker.io', path: `library/${HEX64}`, tag: 'tag' }],
  [HEX64.slice(0, 63), { domain: 'docker.io', path: `library/${HEX64.slice(0, 63)}`, tag: 'latest' }],
  [
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    { domain: 'docker.io', path: 'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', tag: 'latest' },
  ],
  // path length: the domain is not counted, but docker.io's library/ prefix is part of the path
  [`example.com/${pathOfLength(255)}`, { domain: 'example.com', path: pathOfLength(255), tag: 'latest' }],
  [`${'a/'.repeat(127)}a:tag-puts-this-over-max`, { domain: 'docker.io', path: `${'a/'.repeat(127)}a`, tag: 'tag-puts-this-over-max' }],
  [`${'x'.repeat(247)}`, { domain: 'docker.io', path: `library/${'x'.repeat(247)}`, tag: 'latest' }],
  // digests: both tag and digest are kept
  ['test:5000/repo@' + SHA256, { domain: 'test:5000', path: 'repo', digest: SHA256 }],
  ['test:5000/repo:tag@' + SHA256, { domain: 'test:5000', path: 'repo', tag: 'tag', digest: SHA256 }],
  ['busybox:latest@' + BUSYBOX_DIGEST, { domain: 'docker.io', path: 'library/busybox', tag: 'latest', digest: BUSYBOX_DIGEST }],
  ['busybox@' + BUSYBOX_DIGEST, { domain: 'docker.io', path: 'library/busybox', digest: BUSYBOX_DIGEST }],
  [
    'xn--7o8h.com/myimage:xn--7o8h.com@' + SHA512,
    { domain: 'xn--7o8h.com', path: 'myimage', tag: 'xn--7o8h.com', digest: SHA512 },
  ],
  ['repo@blake3:' + F64, { domain: 'docker.io', path: 'library/repo', digest: 'blake3:' + F64 }],
  [
    'repo@multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8',
    { domain: 'docker.io', path: 'library/repo', digest: 'multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8' },
  ],
];

type Invalid = [input: string, reason: string];

const invalid: Invalid[] = [
  // empty names
  ['', 'repository name must have at least one component'],
  [':justtag', 'repository name must have at least one component'],
  ['@' + SHA256, 'repository name must have at least one component'],
  // uppercase in the repository path
  ['Foo', 'repository name must be lowercase'],
  ['Uppercase:tag', 'repository name must be lowercase'],
  ['docker/Docker', 'repository name must be lowercase'],
  ['docker.io/docker/Docker', 'repository name must be lowercase'],
  ['test:5000/Uppercase/lowercase:tag', 'repository name must be lowercase'],
  ['localhost/Foo', 'repository name must be lowercase'],
  ['Foo_bar/baz', 'repository name must be lowercase'],
  // bare identifiers
  [HEX64, 'image ID, not a repository name'],
  [F64, 'image ID, not a repository name'],
  // bad path components
  ['-docker', 'invalid repository name component "-docker"'],
  ['-docker/docker', 'invalid repository name component "-docker"'],
  ['docker-/docker', 'invalid repository name component "docker-"'],
  ['-docker-/docker', 'invalid repository name component'],
  ['a-b-', 'invalid repository name component "a-b-"'],
  ['a___b', 'invalid repository name component "a___b"'],
  ['____/____', 'invalid repository name component'],
  ['_docker/_docker', 'invalid repository name component'],
  ['dock..er/docker', 'invalid registry domain "dock..er"'],
  ['dock_.er/docker', 'invalid registry domain "dock_.er"'],
  ['dock-.er/docker', 'invalid registry domain "dock-.er"'],
  ['dock..er', 'invalid repository name component "dock..er"'],
  ['dock_.er', 'invalid repository name component "dock_.er"'],
  ['aa/asdf$$^/aa', 'invalid repository name component "asdf$$^"'],
  ['foo bar', 'invalid repository name component'],
  ['ubuntu:tag:extra', 'invalid repository name component "ubuntu:tag"'],
  ['docker///docker', 'empty path component'],
  ['docker.io/docker///docker', 'empty path component'],
  ['docker/', 'empty path component'],
  ['localhost:5000/', 'empty path component'],
  // bad domains
  ['https://github.com/docker/docker', 'invalid registry domain "https:"'],
  ['-docker.io/docker/docker', 'invalid registry domain "-docker.io"'],
  ['fc00::1:5000/debian', 'invalid registry domain'],
  ['[fe80::1%eth0]:5000/debian', 'invalid registry domain'],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', 'invalid registry domain'],
  ['host:port/repo', 'invalid registry domain "host:port"'],
  ['[fc00::1]', 'invalid'],
  ['[fc00::1]:5000', 'invalid'],
  ['[2001:db8::1]:tag', 'invalid'],
  ['[fe80::1%@invalidzone]:5000/repo', 'invalid'],
  // tags
  ['foo:', 'invalid tag ""'],
  ['foo:' + 'a'.repeat(129), 'invalid tag'],
  ['foo:.bar', 'invalid tag ".bar"'],
  ['foo:-bar', 'invalid tag "-bar"'],
  ['foo:a+b', 'invalid tag "a+b"'],
  // digests
  ['foo@', 'invalid digest ""'],
  ['repo@sha256:' + 'f'.repeat(34), 'sha256 needs 64 lowercase hex characters'],
  ['repo@sha256:' + 'F'.repeat(64), 'sha256 needs 64 lowercase hex characters'],
  ['repo@sha512:' + F64, 'sha512 needs 128 lowercase hex characters'],
  ['repo@SHA256:' + F64, 'invalid digest'],
  ['repo@sha256', 'invalid digest'],
  ['repo@sha256:' + F64 + '@' + SHA256, 'invalid digest'],
  // length: at most 255 characters of path
  [`example.com/${pathOfLength(256)}`, 'repository name must not be more than 255 characters'],
  [`${'a/'.repeat(128)}a:tag`, 'repository name must not be more than 255 characters'],
  [`${'x'.repeat(248)}`, 'repository name must not be more than 255 characters'],
  [
    'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker',
    'repository name must not be more than 255 characters',
  ],
];

describe('parseDockerName: valid names', () => {
  it.each(valid)('%s', (input, expected) => {
    expect(parseDockerName(input)).toEqual(expected);
  });

  it.each(valid)('round-trips %s through formatDockerReference', (input) => {
    const ref = parseDockerName(input);
    const formatted = formatDockerReference(ref);
    expect(parseDockerName(formatted)).toEqual(ref);
    expect(formatDockerReference(parseDockerName(formatted))).toBe(formatted);
  });
});

describe('parseDockerName: invalid names', () => {
  it.each(invalid)('%s', (input, reason) => {
    const err = errorOf(() => parseDockerName(input));
    expect(err.code).toBe('INVALID_REFERENCE');
    expect(err.exitCode).toBe(2);
    expect(err.message.startsWith(`invalid reference ${JSON.stringify(input)}: `)).toBe(true);
    expect(err.message).toContain(reason);
    expect(err.message).not.toContain('\n');
  });

  it('has at least 50 valid and invalid cases together', () => {
    expect(valid.length + invalid.length).toBeGreaterThanOrEqual(50);
  });
});

describe('parseDockerName: messages and details', () => {
  it('words the uppercase error like distribution/reference', () => {
    expect(() => parseDockerName('Foo')).toThrow('invalid reference "Foo": repository name must be lowercase');
    expect(() => parseDockerName('docker/Docker')).toThrow('invalid reference "docker/Docker": repository name must be lowercase');
  });

  it('treats an uppercase first component as a domain, not as a lowercase violation', () => {
    expect(parseDockerName('Foo/bar')).toEqual({ domain: 'Foo', path: 'bar', tag: 'latest' });
    expect(() => parseDockerName('Foo/Bar')).toThrow('repository name must be lowercase');
  });

  it('blames a bad digest, not uppercase, for uppercase hex', () => {
    const err = errorOf(() => parseDockerName('repo@sha256:' + 'A'.repeat(64)));
    expect(err.message).not.toContain('must be lowercase');
    expect(err.message).toContain('invalid digest');
  });

  it('quotes the context instead of the name when given one', () => {
    expect(() => parseDockerName('Foo', 'docker://Foo')).toThrow('invalid reference "docker://Foo": repository name must be lowercase');
  });

  it('keeps error messages on one line', () => {
    const err = errorOf(() => parseDockerName('foo\nbar'));
    expect(err.message).toContain('"foo\\nbar"');
    expect(err.message).not.toContain('\n');
  });

  it('adds latest only when neither tag nor digest is given', () => {
    expect(parseDockerName('ubuntu').tag).toBe('latest');
    expect(parseDockerName('ubuntu:20.04').tag).toBe('20.04');
    expect(parseDockerName('ubuntu@' + SHA256).tag).toBeUndefined();
    expect(parseDockerName('ubuntu:20.04@' + SHA256)).toEqual({
      domain: 'docker.io',
      path: 'library/ubuntu',
      tag: '20.04',
      digest: SHA256,
    });
  });

  it('accepts tags of 128 characters and refuses 129', () => {
    expect(parseDockerName('foo:' + 'A'.repeat(128)).tag).toHaveLength(128);
    expect(() => parseDockerName('foo:' + 'A'.repeat(129))).toThrow(/invalid tag/);
  });

  it('accepts paths of 255 characters and refuses 256 (domain not counted)', () => {
    const long = 'very-long-registry-domain.example.com:5000';
    expect(parseDockerName(`${long}/${pathOfLength(255)}`).path).toHaveLength(255);
    expect(() => parseDockerName(`${long}/${pathOfLength(256)}`)).toThrow(/not be more than 255/);
  });
});

describe('formatDockerReference', () => {
  const cases: [DockerReference, string][] = [
    [{ domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
    [{ domain: 'docker.io', path: 'library/ubuntu' }, 'docker.io/library/ubuntu'],
    [{ domain: 'docker.io', path: 'library/ubuntu', digest: SHA256 }, `docker.io/library/ubuntu@${SHA256}`],
    [{ domain: 'host:5000', path: 'a/b', tag: 'v1', digest: SHA256 }, `host:5000/a/b:v1@${SHA256}`],
    [{ domain: '[::1]:5000', path: 'x', tag: 'latest' }, '[::1]:5000/x:latest'],
  ];
  it.each(cases)('%j -> %s', (ref, expected) => {
    expect(formatDockerReference(ref)).toBe(expected);
  });

  it('gives the full normalised form of familiar input', () => {
    expect(formatDockerReference(parseDockerName('ubuntu'))).toBe('docker.io/library/ubuntu:latest');
    expect(formatDockerReference(parseDockerName('index.docker.io/user/repo:v2'))).toBe('docker.io/user/repo:v2');
    expect(formatDockerReference(parseDockerName('busybox:latest@' + BUSYBOX_DIGEST))).toBe(
      'docker.io/library/busybox:latest@' + BUSYBOX_DIGEST,
    );
  });
});

describe('familiarName and repositoryName', () => {
  // [any accepted spelling, familiar name, repository name]
  const cases: [string, string, string][] = [
    ['ubuntu', 'ubuntu', 'docker.io/library/ubuntu'],
    ['docker.io/library/ubuntu:latest', 'ubuntu', 'docker.io/library/ubuntu'],
    ['library/ubuntu', 'ubuntu', 'docker.io/library/ubuntu'],
    ['index.docker.io/library/ubuntu-12.04-base', 'ubuntu-12.04-base', 'docker.io/library/ubuntu-12.04-base'],
    ['docker.io/foo', 'foo', 'docker.io/library/foo'],
    ['fooo/bar', 'fooo/bar', 'docker.io/fooo/bar'],
    ['index.docker.io/fooo/bar', 'fooo/bar', 'docker.io/fooo/bar'],
    ['nonlibrary/ubuntu', 'nonlibrary/ubuntu', 'docker.io/nonlibrary/ubuntu'],
    ['other/library', 'other/library', 'docker.io/other/library'],
    ['library/foo/bar', 'library/foo/bar', 'docker.io/library/foo/bar'],
    ['store/foo/bar', 'store/foo/bar', 'docker.io/store/foo/bar'],
    ['127.0.0.1:8000/private/moonbase', '127.0.0.1:8000/private/moonbase', '127.0.0.1:8000/private/moonbase'],
    ['127.0.0.1:8000/privatebase', '127.0.0.1:8000/privatebase', '127.0.0.1:8000/privatebase'],
    ['example.com:8000/privatebasee:v1', 'example.com:8000/privatebasee', 'example.com:8000/privatebasee'],
    ['host:5000/repo@' + SHA256, 'host:5000/repo', 'host:5000/repo'],
    ['localhost/library/foo', 'localhost/library/foo', 'localhost/library/foo'],
    ['Foo/bar', 'Foo/bar', 'Foo/bar'],
    ['FOO/bar', 'FOO/bar', 'FOO/bar'],
  ];
  it.each(cases)('%s -> %s', (input, familiar, repository) => {
    const ref = parseDockerName(input);
    expect(familiarName(ref)).toBe(familiar);
    expect(repositoryName(ref)).toBe(repository);
    // the familiar name parses back to the same repository
    expect(repositoryName(parseDockerName(familiar))).toBe(repository);
  });
});

describe('registryHost', () => {
  it.each([
    ['docker.io', 'registry-1.docker.io'],
    ['localhost:5000', 'localhost:5000'],
    ['ghcr.io', 'ghcr.io'],
    ['[::1]:5000', '[::1]:5000'],
    ['registry-1.docker.io', 'registry-1.docker.io'],
  ])('%s -> %s', (domain, host) => {
    expect(registryHost(domain)).toBe(host);
  });

  it('maps a parsed Docker Hub name to its registry host', () => {
    expect(registryHost(parseDockerName('index.docker.io/ubuntu').domain)).toBe('registry-1.docker.io');
  });
});
