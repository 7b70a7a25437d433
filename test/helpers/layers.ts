/**
 * Crafted layers for unpack and artifact tests: tars written exactly as given (names however hostile,
 * PAX records with binary values), and a one-tag OCI layout image made of them.
 */
import { execFileSync } from 'node:child_process';
import { createGunzip, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { digestOf } from '../../src/digest/digest.js';
import { OciLayout } from '../../src/layout/layout.js';
import { MediaType } from '../../src/spec/media-types.js';
import type { Descriptor, ImageManifest } from '../../src/spec/types.js';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  /** Seconds since the epoch (default 1 600 000 000). */
  mtime?: number;
  /** PAX records written raw before the entry (binary values survive): `SCHILY.xattr.NAME` → bytes. */
  pax?: Record<string, Buffer | string>;
}

/** One PAX record, `LEN KEY=VALUE\n`, its length counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** The name of the stand-in file whose header becomes a PAX header ('x') once the tar is made. */
const PAX_MARK = 'PaxHeaders.0/ocitool-test-pax';

/** Turns the stand-in headers into PAX headers: typeflag 'x', checksum again. */
function markPax(tar: Buffer): Buffer {
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim() || '0', 8);
    if (h.subarray(0, 100).toString('utf8').replace(/\0.*$/, '') === PAX_MARK) {
      h[156] = 'x'.charCodeAt(0);
      h.fill(' ', 148, 156);
      let sum = 0;
      for (const b of h) sum += b;
      h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return tar;
}

/** A layer tar with exactly these entries. */
export async function layerTar(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (e.pax) {
      const records = Object.entries(e.pax).map(([k, v]) => paxRecord(k, Buffer.isBuffer(v) ? v : Buffer.from(v)));
      p.entry({ name: PAX_MARK, mode: 0o644 }, Buffer.concat(records));
    }
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      mtime: new Date((e.mtime ?? 1_600_000_000) * 1000),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
    };
    p.entry(header, type === 'file' ? (e.content ?? '') : '');
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  return markPax(Buffer.concat(chunks));
}

/** An image of these layers (entry lists, or tars made elsewhere) in a new layout, tagged `t`; returns `oci:DIR:t`. */
export async function imageOf(dir: string, layers: (TarEntry[] | Buffer)[]): Promise<string> {
  const layout = await OciLayout.init(dir);
  const descs: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const entries of layers) {
    const tar = Buffer.isBuffer(entries) ? entries : await layerTar(entries);
    diffIds.push(digestOf(tar));
    descs.push(await layout.putBytes(gzipSync(tar), MediaType.OciLayerGzip));
  }
  const cfg = await layout.putBytes(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }), MediaType.OciConfig);
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers: descs };
  await layout.tag(await layout.putBytes(JSON.stringify(m), MediaType.OciManifest), 't');
  return `oci:${dir}:t`;
}

/** type, mode, owner and link target of every path under `dir`, sorted: what two unpacks must share. */
export function listing(dir: string): string {
  return execFileSync('sh', ['-c', `cd "${dir}" && find . -printf '%P %y %m %U:%G %l\\n' | sort`]).toString();
}

/** The entry names of a layer in a layout, in tar order ('dir/' for directories); gzip or plain. */
export async function layerEntryNames(layout: OciLayout, layer: Descriptor): Promise<string[]> {
  const ex = extract();
  const names: string[] = [];
  ex.on('entry', (h, s, next) => {
    names.push(h.type === 'directory' ? `${h.name.replace(/\/$/, '')}/` : h.name);
    s.resume();
    s.on('end', next);
  });
  const done = new Promise((resolve, reject) => {
    ex.on('finish', () => resolve(undefined));
    ex.on('error', reject);
  });
  const body = await layout.fetch(layer);
  (layer.mediaType.endsWith('gzip') ? body.pipe(createGunzip()) : body).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return names;
}
