// Writes the hand-made schema 1 cases in this folder, each in skopeo's dir: format (manifest.json, a
// version file and blobs named by their hex digest). Run with `node testdata/schema1-cases/make.mjs`;
// the output is committed (the same on every run but for the signing keys: gzip by this Node's zlib,
// fixed times).
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const sha = (b) => createHash('sha256').update(b).digest('hex');
const id = (s) => sha(`id ${s}`);

/** A one-file tar (ustar, as tar-stream would write it, enough for these tests). */
function tar(name, content) {
  const body = Buffer.from(content);
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad, Buffer.alloc(1024)]);
}

/** docker's 32-byte gzipped empty tar (a3ed95ca…), the blob of throwaway entries. */
const EMPTY = Buffer.from([31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255, 46, 175, 181, 239, 0, 4, 0, 0]);

function write(name, entries, opts = {}) {
  const dir = join(here, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  const fsLayers = [];
  const history = [];
  // entries: oldest first; each { blob: Buffer, throwaway?, v1: extra v1Compatibility fields }.
  entries.forEach((e, i) => {
    const blob = e.blob ?? EMPTY;
    writeFileSync(join(dir, sha(blob)), blob);
    const v1 = { id: e.id ?? id(`${name} ${i}`), ...(i > 0 ? { parent: entries[i - 1].id ?? id(`${name} ${i - 1}`) } : {}), ...e.v1, ...(e.throwaway ? { throwaway: true } : {}) };
    fsLayers.unshift({ blobSum: `sha256:${sha(blob)}` });
    history.unshift({ v1Compatibility: JSON.stringify(v1) });
  });
  if (opts.dropHistory) history.pop();
  const manifest = { schemaVersion: 1, name: `cases/${name}`, tag: 'latest', architecture: 'amd64', fsLayers, history };
  let text = JSON.stringify(manifest, null, 3);
  if (opts.sign) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const formatLength = text.lastIndexOf('\n}');
    const prot = Buffer.from(JSON.stringify({ formatLength, formatTail: Buffer.from('\n}').toString('base64url'), time: '2021-01-01T00:00:00Z' })).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${prot}.${Buffer.from(text).toString('base64url')}`), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    const sigs = JSON.stringify([{ header: { jwk: publicKey.export({ format: 'jwk' }), alg: 'ES256' }, signature, protected: prot }], null, 3).replace(/\n/g, '\n   ');
    // The tamper: the signed part changes after signing (the architecture of the image).
    if (opts.tamper) text = text.replace('"architecture": "amd64"', '"architecture": "arm64"');
    text = `${text.slice(0, formatLength)},\n   "signatures": ${sigs}\n}`;
  }
  writeFileSync(join(dir, 'manifest.json'), text);
}

const base = (i, extra = {}) => ({ created: `2021-01-01T00:00:0${i}Z`, container_config: { Cmd: ['/bin/sh', '-c', `step ${i}`] }, ...extra });
const top = (i) => base(i, { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/w' }, docker_version: '20.10.0' });
const layer = (n) => gzipSync(tar(`file-${n}`, `content ${n}\n`));

write('empty-first-last', [
  { throwaway: true, v1: base(0) },
  { blob: layer('a'), v1: base(1) },
  { throwaway: true, v1: base(2) },
  { blob: layer('b'), v1: base(3) },
  { throwaway: true, v1: top(4) },
]);
write('duplicate-layer', [
  { blob: layer('a'), v1: base(0) },
  { blob: layer('b'), v1: base(1) },
  { blob: layer('a'), v1: base(2) },
  { throwaway: true, v1: top(3) },
]);
write('missing-fields', [
  { blob: layer('a'), v1: {} },
  { blob: layer('b'), v1: { architecture: 'amd64', os: 'linux' } },
]);
write('count-mismatch', [{ blob: layer('a'), v1: base(0) }, { blob: layer('b'), v1: top(1) }], { dropHistory: true });
write('bad-signature', [{ blob: layer('a'), v1: base(0) }, { blob: layer('b'), v1: top(1) }], { sign: true, tamper: true });
write('good-signature', [{ blob: layer('a'), v1: base(0) }, { blob: layer('b'), v1: top(1) }], { sign: true });
