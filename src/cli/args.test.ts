import { describe, expect, it } from 'vitest';
import { createdSeconds, parseImageArg } from './args.js';

describe('createdSeconds: the one --created parser', () => {
  it.each([
    ['2024-01-01T00:00:00Z', 1704067200],
    ['2024-01-01t00:00:00z', 1704067200],
    ['2024-01-01 00:00:00Z', 1704067200],
    ['2024-01-01T00:00:00.999Z', 1704067200],
    ['2024-01-01T01:30:00+01:30', 1704067200],
    ['2023-12-31T19:00:00-05:00', 1704067200],
    ['2024-02-29T00:00:00Z', 1709164800],
    ['1704067200', 1704067200],
    ['@1704067200', 1704067200],
    ['0', 0],
  ])('%s is %d', (v, want) => {
    expect(createdSeconds(v, undefined)).toBe(want);
  });

  it.each(['2023-02-29T00:00:00Z', '2024-13-01T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T00:60:00Z', '2024-01-01T00:00:00', '2024-01-01T00:00:00+25:00', '1969-12-31T23:59:59Z', '10000-01-01T00:00:00Z', '-1', '1e9', ''])('%j is a usage error', (v) => {
    expect(() => createdSeconds(v, undefined)).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining('--created') }));
  });

  it('without the flag: SOURCE_DATE_EPOCH in whole seconds, else undefined (now)', () => {
    expect(createdSeconds(undefined, '1704067200')).toBe(1704067200);
    expect(createdSeconds(undefined, undefined)).toBeUndefined();
    expect(createdSeconds(undefined, '')).toBeUndefined();
    expect(() => createdSeconds(undefined, '2024-01-01T00:00:00Z')).toThrow(/SOURCE_DATE_EPOCH=2024-01-01T00:00:00Z: expected whole seconds/);
    // The flag wins over the environment.
    expect(createdSeconds('5', 'junk')).toBe(5);
  });
});

describe('parseImageArg', () => {
  it('reads a plain DIR[:TAG] as a layout, HOST/… (no such path) as a mistake, SCHEME:/… as a transport', () => {
    expect(parseImageArg('out:v1')).toEqual({ transport: 'oci', dir: 'out', tag: 'v1' });
    expect(parseImageArg('./ghcr.io/org/app:v1')).toEqual({ transport: 'oci', dir: './ghcr.io/org/app', tag: 'v1' });
    expect(parseImageArg('../x.y/app')).toEqual({ transport: 'oci', dir: '../x.y/app' });
    for (const s of ['ghcr.io/org/app:v1', 'localhost:5000/team/app:v1', 'localhost/app', '[::1]:5000/app', 'ghcr.io/org/app@sha256:' + 'a'.repeat(64)]) {
      expect(() => parseImageArg(s), s).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(`write "docker://${s}"`) }));
    }
    // Not a valid docker name: no docker:// to suggest, the form instead.
    expect(() => parseImageArg('ghcr.io/Org/App')).toThrow(/looks like a registry image, not a layout: a registry image is written docker:\/\/HOST\/REPO\[:TAG\]/);
    expect(() => parseImageArg('dockr://ghcr.io/x')).toThrow(/unknown transport "dockr" \(try "docker:\/\/ghcr.io\/x"\)/);
    expect(() => parseImageArg('dockr:/x')).toThrow(/unknown transport "dockr"/);
  });
});
