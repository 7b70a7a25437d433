import { describe, expect, it } from 'vitest';
import { MediaType } from './media-types.js';
import { checkImageConfig, detectManifestType, jsonDepth, parseJson, parseManifest } from './parse.js';
import { parsePlatform, platformMatches } from './platform.js';

const D = 'sha256:' + 'a'.repeat(64);
const desc = (mediaType: string) => ({ mediaType, digest: D, size: 1 });

describe('parseJson', () => {
  it('names the document on malformed input', () => {
    expect(() => parseJson('{"a":', 'index.json')).toThrow(/^index\.json: malformed JSON/);
  });
  it('refuses documents over the cap', () => {
    expect(() => parseJson('x'.repeat(11), 'big', 10)).toThrow(/over the 10-byte limit/);
  });
});

describe('parseManifest', () => {
  it('reads an index, a manifest and schema 1', () => {
    expect(parseManifest(JSON.stringify({ schemaVersion: 2, manifests: [] }), 'x').kind).toBe('index');
    const m = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: desc(MediaType.OciConfig), layers: [desc(MediaType.OciLayerGzip)] };
    expect(parseManifest(JSON.stringify(m), 'x', MediaType.OciManifest).kind).toBe('manifest');
    expect(parseManifest(JSON.stringify({ schemaVersion: 1, fsLayers: [], history: [] }), 'x').kind).toBe('schema1');
  });

  it('rejects broken shapes with the document named', () => {
    expect(() => parseManifest(JSON.stringify({ schemaVersion: 2, config: desc('x') }), 'manifest M', MediaType.OciManifest)).toThrow(/manifest M: manifest has no "layers"/);
    expect(() => parseManifest(JSON.stringify({ schemaVersion: 3, manifests: [] }), 'I', MediaType.OciIndex)).toThrow(/schemaVersion/);
    const bad = { schemaVersion: 2, manifests: [{ mediaType: 'x', digest: 'sha256:ABC', size: 1 }] };
    expect(() => parseManifest(JSON.stringify(bad), 'I', MediaType.OciIndex)).toThrow(/invalid digest/);
    const neg = { schemaVersion: 2, manifests: [{ mediaType: 'x', digest: D, size: -5 }] };
    expect(() => parseManifest(JSON.stringify(neg), 'I', MediaType.OciIndex)).toThrow(/invalid size/);
  });

  it('keeps a disagreement between descriptor and document visible', () => {
    const m = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config: desc(MediaType.DockerConfig), layers: [] };
    const p = parseManifest(JSON.stringify(m), 'x', MediaType.OciManifest);
    expect(p.mediaType).toBe(MediaType.DockerManifest);
    expect(p.ownMediaType).toBe(MediaType.DockerManifest);
  });

  it('detects types of documents without mediaType', () => {
    expect(detectManifestType({ schemaVersion: 2, config: desc(MediaType.DockerConfig), layers: [] })).toBe(MediaType.DockerManifest);
    expect(detectManifestType({ schemaVersion: 2, config: desc(MediaType.OciConfig), layers: [] })).toBe(MediaType.OciManifest);
    expect(detectManifestType({ schemaVersion: 1, signatures: [] })).toBe(MediaType.DockerSchema1Signed);
  });
});

describe('config and platform', () => {
  it('checks rootfs', () => {
    expect(() => checkImageConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'x', diff_ids: [] } }, 'C')).toThrow(/rootfs.type/);
    expect(checkImageConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D] } }, 'C').rootfs.diff_ids).toEqual([D]);
  });
  it('parses and matches platforms', () => {
    // A variant given is recorded as given (matching still treats arm64/v8 as plain arm64).
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/aarch64/8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm64' }, parsePlatform('linux/arm64/v8'))).toBe(true);
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(() => parsePlatform('linux')).toThrow(/OS\/ARCH/);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' })).toBe(false);
  });
});

describe('parseJson nesting', () => {
  it('refuses documents nested deeper than MAX_JSON_DEPTH, naming the document, before anything recursive sees them', () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    expect(() => parseJson(deep, 'manifest sha256:abc')).toThrow(/^manifest sha256:abc: JSON nested more than 256 levels deep$/);
    expect(jsonDepth(`${'{"a":'.repeat(256)}1${'}'.repeat(256)}`)).toBe(256);
    expect(() => parseJson(`${'{"a":'.repeat(257)}1${'}'.repeat(257)}`, 'config')).toThrow(/nested more than 256/);
  });

  it('counts no brackets inside strings, escaped quotes included', () => {
    expect(jsonDepth(JSON.stringify({ a: '[[[{{{\\"[[[', b: ['x'] }))).toBe(2);
    expect(parseJson(JSON.stringify({ s: '['.repeat(10_000) }), 'doc')).toEqual({ s: '['.repeat(10_000) });
  });
});
