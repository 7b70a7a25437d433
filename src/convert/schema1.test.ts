import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { digestOf } from '../digest/digest.js';
import { isOciToolError } from '../util/errors.js';
import { compactRaw, goString, goTime, marshalRawMap, rawObjectEntries } from './go-json.js';
import { ociConfigFromDocker } from './oci-config.js';
import { normalizeSchema1, readSchema1, schema1Config, schema1Layers, verifySchema1Signatures } from './schema1.js';

const fixture = (name: string): Buffer => readFileSync(join(import.meta.dirname, '../../testdata/schema1', name));
const json = (b: Buffer | string): unknown => JSON.parse(b.toString());

/** Signs an unsigned schema 1 manifest as libtrust does (ES256 over `protected.payload`, key in the header). */
function signSchema1(unsigned: Buffer): Buffer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const text = unsigned.toString().trimEnd();
  const formatLength = text.lastIndexOf('\n}');
  const payload = Buffer.from(text);
  const protectedHeader = Buffer.from(JSON.stringify({ formatLength, formatTail: Buffer.from(text.slice(formatLength)).toString('base64url'), time: '2020-01-01T00:00:00Z' })).toString('base64url');
  const signature = sign('sha256', Buffer.from(`${protectedHeader}.${payload.toString('base64url')}`), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  const jwk = publicKey.export({ format: 'jwk' });
  const sigs = JSON.stringify([{ header: { jwk, alg: 'ES256' }, signature, protected: protectedHeader }], null, 3).replace(/\n/g, '\n   ');
  return Buffer.from(`${text.slice(0, formatLength)},\n   "signatures": ${sigs}\n}`);
}

describe('Go-compatible JSON', () => {
  it('escapes strings as Go does', () => {
    expect(goString('a<b>&c\u2028"\\\n\u0001\b')).toBe('"a\\u003cb\\u003e\\u0026c\\u2028\\"\\\\\\n\\u0001\\u0008"');
  });
  it('compacts raw values keeping number and escape text', () => {
    expect(compactRaw('{ "a" : [1.50, 2e3, "x y\\u00e9 <"] ,\n "b":null }')).toBe('{"a":[1.50,2e3,"x y\\u00e9 \\u003c"],"b":null}');
  });
  it('sorts map keys by UTF-8 bytes, a later duplicate winning', () => {
    const m = rawObjectEntries('{"b":1,"é":2,"Z":3,"b":4,"a":{"k": true}}', 't');
    expect(marshalRawMap(m)).toBe('{"Z":3,"a":{"k":true},"b":4,"é":2}');
  });
  it('prints times as Go does', () => {
    expect(goTime('2017-11-21T16:47:27.755341705Z')).toBe('2017-11-21T16:47:27.755341705Z');
    expect(goTime('2017-11-21T16:47:27.100000000+00:00')).toBe('2017-11-21T16:47:27.1Z');
    expect(goTime('2017-11-21T16:47:27.0000000001-05:00')).toBe('2017-11-21T16:47:27-05:00');
    expect(goTime('yesterday')).toBeUndefined();
  });
});

describe('schema 1 manifests', () => {
  it('takes the digest of a signed manifest over its JWS payload, equal to the unsigned form', () => {
    const signed = readSchema1(fixture('v2s1.manifest.json'), 'signed');
    const unsigned = readSchema1(fixture('v2s1-unsigned.manifest.json'), 'unsigned');
    expect(signed.signed).toBe(true);
    expect(signed.digest).toBe('sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000');
    expect(unsigned.digest).toBe(signed.digest);
    expect(signed.payload.equals(fixture('v2s1-unsigned.manifest.json'))).toBe(true);
  });

  it('rejects a malformed signatures block', () => {
    expect(() => readSchema1(fixture('v2s1-invalid-signatures.manifest.json'), 'bad.json')).toThrow(/bad\.json: .*signature/);
  });

  it('verifies JWS signatures and names one that does not verify', () => {
    const bytes = signSchema1(fixture('v2s1-unsigned.manifest.json'));
    expect(verifySchema1Signatures(bytes, readSchema1(bytes, 'm'), 'm')).toBe(1);
    expect(readSchema1(bytes, 'm').digest).toBe('sha256:7364fea9d84ee548ab67d4c46c6006289800c98de3fbf8c0a97138dfcc23f000');
    // The same signature over a changed payload (a tag renamed inside the signed part).
    const tampered = Buffer.from(bytes.toString().replace('"tag": "latest"', '"tag": "lateSt"'));
    expect(tampered.equals(bytes)).toBe(false);
    const doc = readSchema1(tampered, 'tampered.json');
    expect(doc.digest).not.toBe(readSchema1(bytes, 'm').digest);
    try {
      verifySchema1Signatures(tampered, doc, 'tampered.json');
      expect.unreachable();
    } catch (err) {
      expect(isOciToolError(err, 'SIGNATURE_INVALID')).toBe(true);
      expect((err as Error).message).toMatch(/^tampered\.json: signature 1 of 1 does not verify/);
    }
  });

  it('builds the config containers/image builds, byte for byte (its image ID)', () => {
    // The fixture was re-indented after signing: its formatLength cuts the body mid-document, so its
    // signed payload is not JSON. Read it unsigned (the conversion is what this checks).
    const { signatures: _, ...unsigned } = json(fixture('schema2-to-schema1-by-docker.json')) as Record<string, unknown>;
    expect(() => readSchema1(fixture('schema2-to-schema1-by-docker.json'), 'httpd')).toThrow(/^httpd \(signed payload\): malformed JSON/);
    const doc = readSchema1(Buffer.from(JSON.stringify(unsigned)), 'httpd');
    const img = normalizeSchema1(doc, 'httpd');
    const diffIds = [
      'sha256:142a601d97936307e75220c35dde0348971a9584c21e7cb42e1f7004005432ab',
      'sha256:90fcc66ad3be9f1757f954b750deb37032f208428aa12599fcb02182b9065a9c',
      'sha256:5a8624bb7e76d1e6829f9c64c43185e02bc07f97a2189eb048609a8914e72c56',
      'sha256:d349ff6b3afc6a2800054768c82bfbf4289c9aa5da55c1290f802943dcd4d1e9',
      'sha256:8c064bb1f60e84fa8cc6079b6d2e76e0423389fd6aeb7e497dfdae5e05b2b25b',
    ];
    expect(schema1Layers(img)).toHaveLength(5);
    const config = schema1Config(img, diffIds, 'httpd');
    expect(digestOf(config)).toBe('sha256:9ca4bda0a6b3727a6ffcc43e981cad0f24e2ec79d338f6ba325b4dfd0756fb8f');
    const parsed = json(config) as { history: { empty_layer?: boolean }[] };
    expect(parsed.history).toHaveLength(15);
    expect(parsed.history.filter((h) => h.empty_layer)).toHaveLength(10);
  });

  it('converts like containers/image: schema 2 config and layers, then the OCI config', () => {
    const img = normalizeSchema1(readSchema1(fixture('schema1.json'), 'nova'), 'nova');
    const expected = json(fixture('schema1-to-schema2-config.json')) as { rootfs: { diff_ids: string[] } };
    const config = schema1Config(img, expected.rootfs.diff_ids, 'nova');
    expect(json(config)).toEqual(expected);
    const manifest = json(fixture('schema1-to-schema2.json')) as { layers: { digest: string }[] };
    expect(schema1Layers(img)).toEqual(manifest.layers.map((l) => l.digest));
    expect(json(ociConfigFromDocker(config, 'nova'))).toEqual(json(fixture('schema1-to-oci1-config.json')));
  });

  it('refuses fsLayers and history that do not pair up, naming the counts', () => {
    const m = json(fixture('schema1.json')) as { history: unknown[]; signatures?: unknown };
    m.history.pop();
    delete m.signatures;
    expect(() => normalizeSchema1(readSchema1(Buffer.from(JSON.stringify(m)), 'short.json'), 'short.json')).toThrow(/^short\.json: fsLayers has 6 entries but history has 5/);
  });
});
