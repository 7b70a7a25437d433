import { errorOf } from '../../test/helpers/errors.js';
import { describe, it, expect } from 'vitest';
import { formatReference, isValidRefName, parseReference, type ImageReference } from './transport.js';

const SHA256 = `sha256:${'0123456789abcdef'.repeat(4)}`;
const SHA512 = `sha512:${'f'.repeat(128)}`;

type Valid = [input: string, expected: ImageReference];

const valid: Valid[] = [
  // oci: the directory is everything before the first ':'
  ['oci:/tmp/layout', { transport: 'oci', dir: '/tmp/layout' }],
  ['oci:layout', { transport: 'oci', dir: 'layout' }],
  ['oci:./layout:v1', { transport: 'oci', dir: './layout', tag: 'v1' }],
  ['oci:/tmp/layout:v1.0-rc_1', { transport: 'oci', dir: '/tmp/layout', tag: 'v1.0-rc_1' }],
  ['oci:layout:foo/bar', { transport: 'oci', dir: 'layout', tag: 'foo/bar' }],
  ['oci:layout:a--b', { transport: 'oci', dir: 'layout', tag: 'a--b' }],
  ['oci:layout:a+b@c', { transport: 'oci', dir: 'layout', tag: 'a+b@c' }],
  ['oci:layout:UPPER', { transport: 'oci', dir: 'layout', tag: 'UPPER' }],
  [
    'oci:layout:docker.io/library/ubuntu:22.04',
    { transport: 'oci', dir: 'layout', tag: 'docker.io/library/ubuntu:22.04' },
  ],
  ['oci:/path with spaces/x:v1', { transport: 'oci', dir: '/path with spaces/x', tag: 'v1' }],
  ['oci:/tmp/a@b', { transport: 'oci', dir: '/tmp/a@b' }],
  ['dir:/tmp/saved:image', { transport: 'dir', dir: '/tmp/saved:image' }],
  ['oci:layout:tag@b', { transport: 'oci', dir: 'layout', tag: 'tag@b' }],
  // oci: digest form
  [`oci:/tmp/layout@${SHA256}`, { transport: 'oci', dir: '/tmp/layout', digest: SHA256 }],
  [`oci:layout@${SHA512}`, { transport: 'oci', dir: 'layout', digest: SHA512 }],
  [`oci:/tmp/a@b@${SHA256}`, { transport: 'oci', dir: '/tmp/a@b', digest: SHA256 }],
  [`oci:layout:v1@${SHA256}`, { transport: 'oci', dir: 'layout', tag: 'v1', digest: SHA256 }],
  // oci-archive
  ['oci-archive:/tmp/image.tar', { transport: 'oci-archive', file: '/tmp/image.tar' }],
  ['oci-archive:image.tar:v1', { transport: 'oci-archive', file: 'image.tar', tag: 'v1' }],
  ['oci-archive:image.tar:foo/bar:baz', { transport: 'oci-archive', file: 'image.tar', tag: 'foo/bar:baz' }],
  // docker
  ['docker://ubuntu', { transport: 'docker', ref: { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' } }],
  ['docker://ubuntu:22.04', { transport: 'docker', ref: { domain: 'docker.io', path: 'library/ubuntu', tag: '22.04' } }],
  ['docker://index.docker.io/user/repo', { transport: 'docker', ref: { domain: 'docker.io', path: 'user/repo', tag: 'latest' } }],
  ['docker://localhost:5000/foo:v1', { transport: 'docker', ref: { domain: 'localhost:5000', path: 'foo', tag: 'v1' } }],
  [`docker://[::1]:5000/x@${SHA256}`, { transport: 'docker', ref: { domain: '[::1]:5000', path: 'x', digest: SHA256 } }],
  [
    `docker://busybox:1.36@${SHA256}`,
    { transport: 'docker', ref: { domain: 'docker.io', path: 'library/busybox', tag: '1.36', digest: SHA256 } },
  ],
  ['docker://ghcr.io/owner/app/sub:main', { transport: 'docker', ref: { domain: 'ghcr.io', path: 'owner/app/sub', tag: 'main' } }],
  // docker-archive: split at the first ':' after the transport
  ['docker-archive:/tmp/image.tar', { transport: 'docker-archive', file: '/tmp/image.tar' }],
  [
    'docker-archive:/tmp/image.tar:busybox:1.36',
    { transport: 'docker-archive', file: '/tmp/image.tar', ref: { domain: 'docker.io', path: 'library/busybox', tag: '1.36' } },
  ],
  [
    'docker-archive:image.tar:busybox',
    { transport: 'docker-archive', file: 'image.tar', ref: { domain: 'docker.io', path: 'library/busybox', tag: 'latest' } },
  ],
  [
    'docker-archive:image.tar:localhost:5000/foo:v1',
    { transport: 'docker-archive', file: 'image.tar', ref: { domain: 'localhost:5000', path: 'foo', tag: 'v1' } },
  ],
];

type Invalid = [input: string, reason: string];

const invalid: Invalid[] = [
  // transport
  ['ubuntu', 'no transport given; known transports: oci:'],
  ['/tmp/layout', 'no transport given'],
  [':foo', 'no transport given'],
  ['', 'no transport given'],
  ['dir:', 'empty directory'],
  ['sif:/tmp/x', 'unknown transport "sif"; known transports: oci:DIR'],
  ['ubuntu:latest', 'unknown transport "ubuntu"'],
  ['OCI:/tmp/x', 'unknown transport "OCI"'],
  ['containers-storage:foo', 'unknown transport "containers-storage"'],
  // docker
  ['docker:ubuntu', 'docker references are written docker://NAME (try "docker://ubuntu")'],
  ['docker:/ubuntu', 'docker://NAME'],
  // a suggestion is what parses: no third slash, the transport meant, the registry of a URL
  ['docker:/localhost:5000/x', 'docker references are written docker://NAME (try "docker://localhost:5000/x")'],
  ['docker:///localhost:5000/x', 'docker references are written docker://NAME (try "docker://localhost:5000/x")'],
  ['dockr://ghcr.io/x', 'unknown transport "dockr" (try "docker://ghcr.io/x"); known transports: oci:DIR'],
  ['https://ghcr.io/org/app:v1', 'unknown transport "https" (try "docker://ghcr.io/org/app:v1"); known transports'],
  ['oci-achive:x.tar:v1', 'unknown transport "oci-achive" (try "oci-archive:x.tar:v1")'],
  ['docker://', 'repository name must have at least one component'],
  ['docker://Foo', 'repository name must be lowercase'],
  ['docker://ubuntu:-x', 'invalid tag "-x"'],
  ['docker://ubuntu@sha256:abc', 'sha256 needs 64 lowercase hex characters'],
  [`docker://${'1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a'}`, 'image ID'],
  // oci
  ['oci:', 'empty directory'],
  ['oci::v1', 'empty directory'],
  [`oci:@${SHA256}`, 'empty directory'],
  ['oci:layout:', 'empty tag'],
  ['oci:layout:-bad', 'invalid tag "-bad"'],
  ['oci:layout:a..b', 'invalid tag "a..b"'],
  ['oci:layout:a---b', 'invalid tag "a---b"'],
  ['oci:layout:a/', 'invalid tag "a/"'],
  ['oci:layout:a b', 'invalid tag "a b"'],
  ['oci:layout:a_', 'invalid tag "a_"'],
  ['oci:layout@sha256:abc', 'sha256 needs 64 lowercase hex characters'],
  [`oci:layout@${SHA256.toUpperCase().replace('SHA256', 'sha256')}`, 'sha256 needs 64 lowercase hex characters'],
  [`oci:layout@sha512:${'f'.repeat(64)}`, 'sha512 needs 128 lowercase hex characters'],
  [`oci:layout:@${SHA256}`, 'empty tag'],
  // oci-archive
  ['oci-archive:', 'empty file name'],
  ['oci-archive::v1', 'empty file name'],
  ['oci-archive:image.tar:bad tag', 'invalid tag "bad tag"'],
  [`oci-archive:image.tar@${SHA256}`, 'oci-archive references cannot carry a digest'],
  // docker-archive
  ['docker-archive:', 'empty file name'],
  ['docker-archive::busybox:1', 'empty file name'],
  ['docker-archive:image.tar:', 'repository name must have at least one component'],
  ['docker-archive:image.tar:@0', 'source indexes (FILE:@N) are not supported'],
  ['docker-archive:image.tar:Busybox', 'repository name must be lowercase'],
  [`docker-archive:image.tar:busybox@${SHA256}`, 'docker-archive references cannot carry a digest'],
  [`docker-archive:image.tar:busybox:1@${SHA256}`, 'docker-archive references cannot carry a digest'],
];

describe('parseReference: valid references', () => {
  it.each(valid)('%s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each(valid)('round-trips %s through formatReference', (input) => {
    const ref = parseReference(input);
    const formatted = formatReference(ref);
    expect(parseReference(formatted)).toEqual(ref);
    expect(formatReference(parseReference(formatted))).toBe(formatted);
  });
});

describe('parseReference: invalid references', () => {
  it.each(invalid)('%s', (input, reason) => {
    const err = errorOf(() => parseReference(input));
    expect(err.code).toBe('INVALID_REFERENCE');
    expect(err.exitCode).toBe(2);
    // the whole input is quoted, even when the fault is inside an embedded docker name
    expect(err.message.startsWith(`invalid reference ${JSON.stringify(input)}: `)).toBe(true);
    expect(err.message).toContain(reason);
    expect(err.message).not.toContain('\n');
  });

  it('lists every known transport', () => {
    const err = errorOf(() => parseReference('nope:x'));
    for (const t of ['oci:', 'oci-archive:', 'docker://', 'docker-archive:']) expect(err.message).toContain(t);
  });
});

describe('formatReference', () => {
  const cases: [ImageReference, string][] = [
    [{ transport: 'oci', dir: '/tmp/l' }, 'oci:/tmp/l'],
    [{ transport: 'oci', dir: '/tmp/l', tag: 'v1' }, 'oci:/tmp/l:v1'],
    [{ transport: 'oci', dir: '/tmp/l', digest: SHA256 }, `oci:/tmp/l@${SHA256}`],
    [{ transport: 'oci', dir: '/tmp/l', tag: 'v1', digest: SHA256 }, `oci:/tmp/l:v1@${SHA256}`],
    [{ transport: 'oci-archive', file: 'x.tar' }, 'oci-archive:x.tar'],
    [{ transport: 'oci-archive', file: 'x.tar', tag: 'v1' }, 'oci-archive:x.tar:v1'],
    [{ transport: 'docker', ref: { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' } }, 'docker://docker.io/library/ubuntu:latest'],
    [{ transport: 'docker', ref: { domain: 'ghcr.io', path: 'a/b', digest: SHA256 } }, `docker://ghcr.io/a/b@${SHA256}`],
    [{ transport: 'docker-archive', file: 'x.tar' }, 'docker-archive:x.tar'],
    [
      { transport: 'docker-archive', file: 'x.tar', ref: { domain: 'docker.io', path: 'library/busybox', tag: '1' } },
      'docker-archive:x.tar:docker.io/library/busybox:1',
    ],
  ];
  it.each(cases)('%j -> %s', (ref, expected) => {
    expect(formatReference(ref)).toBe(expected);
    expect(parseReference(expected)).toEqual(ref);
  });

  it('writes docker names in full normalised form', () => {
    expect(formatReference(parseReference('docker://ubuntu'))).toBe('docker://docker.io/library/ubuntu:latest');
    expect(formatReference(parseReference('docker-archive:x.tar:busybox'))).toBe('docker-archive:x.tar:docker.io/library/busybox:latest');
  });

  it('keeps canonical oci forms unchanged', () => {
    for (const s of ['oci:/tmp/l', 'oci:/tmp/l:v1', `oci:/tmp/l@${SHA256}`, 'oci:l:docker.io/library/ubuntu:22.04']) {
      expect(formatReference(parseReference(s))).toBe(s);
    }
  });
});

describe('isValidRefName', () => {
  it.each(['v1', 'latest', '1.0.0', 'a-b', 'a--b', 'a_b', 'a:b', 'a@b', 'a+b', 'foo/bar', 'A/B/C', 'docker.io/library/ubuntu:22.04'])(
    'accepts %s',
    (s) => {
      expect(isValidRefName(s)).toBe(true);
    },
  );
  it.each(['', '-a', 'a-', 'a---b', 'a..b', '/a', 'a/', 'a//b', 'a b', 'a_', 'ä', 'a#b'])('refuses %j', (s) => {
    expect(isValidRefName(s)).toBe(false);
  });
});

describe('hints', () => {
  it('suggest nothing that would fail in turn', () => {
    for (const input of ['docker:/a//b', 'dockr://x:-bad', 'docker:///a//b', 'https://ghcr.io/Org/App']) {
      expect(() => parseReference(input), input).toThrow(/known transports|docker:\/\/NAME/);
      try {
        parseReference(input);
      } catch (err) {
        expect((err as Error).message, input).not.toContain('(try');
      }
    }
  });
});

describe('credentials typed into a reference', () => {
  it('are refused and never echoed: the message shows ***@ instead', () => {
    for (const input of [
      'docker://u:SECRETPASS@127.0.0.1:5000/x:y',
      'docker://admin:SECRETPASS@registry.example/team/app',
      'docker://u:S3/SECRETPASS@host.example/x',
      'docker://u:S3@SECRETPASS@host.example/x',
      'docker://u:SECRETPASS@host.example',
      'docker://u:SECRETPASS@host.example:5000',
      'docker:u:SECRETPASS@host.example/x',
      'u:SECRETPASS@host.example/x@sha256:' + '0'.repeat(64),
    ]) {
      let message = '';
      try {
        parseReference(input);
      } catch (err) {
        message = (err as Error).message;
      }
      if (input.startsWith('docker://')) expect(message, input).toMatch(/credentials do not go in a reference/);
      expect(message, input).toContain('***@');
      expect(message).not.toContain('SECRETPASS');
    }
  });
});
