/**
 * Resuming interrupted transfers from the offset the other side reports. distribution 2.8 (the real
 * registry of the other tests) cancels an upload resumed mid-chunk, so the resume path is driven
 * here by a small server that follows the distribution spec to the letter: it keeps the part of a
 * PATCH that arrived before the connection broke and reports it in `Range`, and serves blob GETs
 * with or without `Range` support.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryStore } from '../src/registry/store.js';
import { BlobLocations } from '../src/registry/blob-locations.js';
import { OciLayout } from '../src/layout/layout.js';
import { markReopenable } from '../src/content/reopen.js';
import { worthRetrying } from '../src/content/copy.js';
import type { Descriptor } from '../src/spec/types.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface SpecServer {
  host: string;
  log: { method: string; url: string; contentRange?: string; range?: string; status: number }[];
  blobs: Map<string, Buffer>;
  /** PATCH body bytes the server took in. */
  patchBytes(): number;
  stop(): Promise<void>;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * `cutPatch`: the n-th PATCH (1-based) gets half its body taken in, then the connection is cut.
 * `cutGet`: blob GETs break after half the body the first time; `rangeSupport` says whether a
 * retried GET with Range gets a 206 or the whole body again (200).
 */
async function startSpecServer(opts: { cutPatch?: number; cutGet?: boolean; rangeSupport?: boolean }): Promise<SpecServer> {
  const log: SpecServer['log'] = [];
  const blobs = new Map<string, Buffer>();
  const uploads = new Map<string, Buffer>();
  let patches = 0;
  let received = 0;
  const cutDone = new Set<string>();
  let nextId = 1;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const entry = { method: req.method ?? '', url: req.url ?? '', ...(req.headers['content-range'] ? { contentRange: req.headers['content-range'] } : {}), ...(req.headers.range ? { range: req.headers.range } : {}), status: 0 };
    log.push(entry);
    const send = (status: number, headers: Record<string, string> = {}, body?: Buffer): void => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };
    const uploadMatch = /^\/v2\/r\/blobs\/uploads\/([^/]*)$/.exec(url.pathname);
    const blobMatch = /^\/v2\/r\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    const rangeOf = (b: Buffer): string => `0-${Math.max(0, b.length - 1)}`;
    void (async () => {
      if (url.pathname === '/v2/') return send(200);
      if (req.method === 'POST' && uploadMatch && uploadMatch[1] === '') {
        const id = `u${nextId++}`;
        uploads.set(id, Buffer.alloc(0));
        return send(202, { location: `/v2/r/blobs/uploads/${id}`, range: '0-0' });
      }
      if (uploadMatch && uploadMatch[1]) {
        const id = uploadMatch[1];
        const have = uploads.get(id);
        if (!have) return send(404, { 'content-type': 'application/json' }, Buffer.from('{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}'));
        if (req.method === 'GET') return send(204, { location: `/v2/r/blobs/uploads/${id}`, range: rangeOf(have) });
        if (req.method === 'PATCH') {
          patches++;
          // A PATCH without Content-Range is a streamed upload: it appends.
          const cr = req.headers['content-range'];
          const start = cr === undefined ? have.length : Number(/^(\d+)-/.exec(cr)?.[1] ?? -1);
          if (start !== have.length) {
            await readAll(req);
            return send(416, { range: rangeOf(have) });
          }
          if (patches === opts.cutPatch) {
            const half = Math.floor(Number(req.headers['content-length']) / 2);
            let got = 0;
            req.on('data', (c: Buffer) => {
              received += c.length;
              const take = c.subarray(0, Math.max(0, half - got));
              got += take.length;
              uploads.set(id, Buffer.concat([uploads.get(id)!, take]));
              if (got >= half) req.socket.destroy();
            });
            entry.status = -1;
            return;
          }
          const body = await readAll(req);
          received += body.length;
          const now = Buffer.concat([have, body]);
          uploads.set(id, now);
          return send(202, { location: `/v2/r/blobs/uploads/${id}`, range: rangeOf(now) });
        }
        if (req.method === 'PUT') {
          const all = Buffer.concat([have, await readAll(req)]);
          const digest = `sha256:${createHash('sha256').update(all).digest('hex')}`;
          if (digest !== url.searchParams.get('digest')) return send(400, { 'content-type': 'application/json' }, Buffer.from('{"errors":[{"code":"DIGEST_INVALID"}]}'));
          blobs.set(digest, all);
          uploads.delete(id);
          return send(201, { location: `/v2/r/blobs/${digest}`, 'docker-content-digest': digest });
        }
      }
      if (blobMatch) {
        const blob = blobs.get(blobMatch[1]!);
        if (!blob) return send(404);
        if (req.method === 'HEAD') return send(200, { 'content-length': String(blob.length) });
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        if (m && opts.rangeSupport) {
          const from = Number(m[1]);
          return send(206, { 'content-range': `bytes ${from}-${blob.length - 1}/${blob.length}`, 'content-length': String(blob.length - from) }, blob.subarray(from));
        }
        if (opts.cutGet && !cutDone.has(blobMatch[1]!)) {
          cutDone.add(blobMatch[1]!);
          entry.status = -1;
          res.writeHead(200, { 'content-length': String(blob.length) });
          res.write(blob.subarray(0, blob.length / 2), () => setTimeout(() => res.socket?.destroy(), 100));
          return;
        }
        return send(200, { 'content-length': String(blob.length) }, blob);
      }
      return send(404);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    blobs,
    patchBytes: () => received,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let server: SpecServer | undefined;
let cacheDir: string | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await server?.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  server = undefined;
  cacheDir = undefined;
});

async function store(host: string, chunkSize?: number): Promise<RegistryStore> {
  cacheDir = await mkdtemp(join(tmpdir(), 'ocitool-resume-'));
  return new RegistryStore(host, 'r', { push: true, backoffMs: 10, locations: new BlobLocations(join(cacheDir, 'locations.json')), ...(chunkSize ? { chunkSize } : {}) });
}

const blobOf = (bytes: Buffer) => ({ mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length });

describe('chunked upload resume', () => {
  it('a PATCH cut halfway resumes from the Range the registry reports, not from the chunk start', async () => {
    server = await startSpecServer({ cutPatch: 2 });
    const data = randomBytes(5 * 64 * 1024 + 1234);
    const s = await store(server.host, 64 * 1024);
    await s.push(blobOf(data), Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]));
    expect(server.blobs.get(blobOf(data).digest)?.equals(data)).toBe(true);
    const patchRanges = server.log.filter((l) => l.method === 'PATCH').map((l) => l.contentRange);
    const K = 64 * 1024;
    // Chunk 2 was cut after half; the next PATCH starts where the registry said it got to.
    expect(patchRanges.slice(0, 3)).toEqual([`0-${K - 1}`, `${K}-${2 * K - 1}`, `${K + K / 2}-${2 * K - 1}`]);
    expect(patchRanges).toHaveLength(7); // six chunks, one of them in two parts
    const statusQueries = server.log.filter((l) => l.method === 'GET' && l.url.includes('/uploads/'));
    expect(statusQueries.length).toBeGreaterThanOrEqual(1);
    expect(server.log.filter((l) => l.method === 'POST')).toHaveLength(1); // never started over
  });

  it('a blob no bigger than a chunk goes up in one PUT', async () => {
    server = await startSpecServer({});
    const data = randomBytes(1000);
    const s = await store(server.host, 64 * 1024);
    await s.push(blobOf(data), Readable.from([data]));
    expect(server.log.filter((l) => l.method === 'PATCH')).toHaveLength(0);
    expect(server.blobs.get(blobOf(data).digest)?.equals(data)).toBe(true);
  });

  it('content that does not match its digest is never committed', async () => {
    server = await startSpecServer({});
    const data = randomBytes(200_000);
    const wrong = Buffer.from(data);
    wrong[150_000] = wrong[150_000]! ^ 1;
    const s = await store(server.host, 64 * 1024);
    await expect(s.push(blobOf(data), Readable.from([wrong]))).rejects.toThrow(/hashes to sha256:[0-9a-f]{64}, expected/);
    expect(server.log.some((l) => l.method === 'PUT')).toBe(false);
    expect(server.blobs.size).toBe(0);
  });
});

describe('streamed upload resume', () => {
  const layoutWith = async (data: Buffer): Promise<{ layout: OciLayout; desc: Descriptor }> => {
    const dir = await mkdtemp(join(tmpdir(), 'ocitool-resume-layout-'));
    dirs.push(dir);
    const layout = await OciLayout.init(dir);
    return { layout, desc: await layout.putBytes(data, 'application/octet-stream') };
  };

  it('a streamed PATCH cut halfway resumes from the Range the registry reports (a layout blob is reopened, its prefix not sent again)', async () => {
    server = await startSpecServer({ cutPatch: 1 });
    const data = randomBytes(6 * 1024 * 1024 + 4321);
    const { layout, desc } = await layoutWith(data);
    const s = await store(server.host);
    await s.push(desc, await layout.fetch(desc));
    expect(server.blobs.get(desc.digest)?.equals(data)).toBe(true);
    const patches = server.log.filter((l) => l.method === 'PATCH');
    expect(patches, JSON.stringify(server.log)).toHaveLength(2);
    expect(patches[0]!.contentRange).toBeUndefined(); // one streamed PATCH
    const half = Math.floor(data.length / 2);
    expect(patches[1]!.contentRange).toBe(`${half}-${data.length - 1}`);
    // Resumed, not restarted: the bytes sent after the cut are the missing half only.
    expect(server.patchBytes()).toBeLessThan(data.length * 1.6);
    expect(server.log.filter((l) => l.method === 'POST')).toHaveLength(1);
  });

  it('a blob streamed from another registry resumes the same way (the source GETs the blob again)', async () => {
    const source = await startSpecServer({});
    try {
      server = await startSpecServer({ cutPatch: 1 });
      const data = randomBytes(4 * 1024 * 1024 + 99);
      const desc = blobOf(data);
      source.blobs.set(desc.digest, data);
      const from = await store(source.host);
      const to = await store(server.host);
      await to.push(desc, await from.fetch(desc));
      expect(server.blobs.get(desc.digest)?.equals(data)).toBe(true);
      const patches = server.log.filter((l) => l.method === 'PATCH');
      expect(patches[1]!.contentRange).toBe(`${Math.floor(data.length / 2)}-${data.length - 1}`);
      expect(server.patchBytes()).toBeLessThan(data.length * 1.6);
      expect(source.log.filter((l) => l.method === 'GET' && l.url.includes('/blobs/sha256:'))).toHaveLength(2);
    } finally {
      await source.stop();
    }
  });

  it('a source that cannot be reopened is not resumed: the failure goes to the copy, which starts over', async () => {
    server = await startSpecServer({ cutPatch: 1 });
    const data = randomBytes(3 * 1024 * 1024);
    const s = await store(server.host);
    const err = await s.push(blobOf(data), Readable.from([data])).catch((e: unknown) => e);
    expect(worthRetrying(err)).toBe(true);
    expect(server.log.filter((l) => l.method === 'PATCH')).toHaveLength(1);
    expect(server.log.some((l) => l.method === 'PUT')).toBe(false);
  });

  it('a reopened source is verified whole: a prefix that changed since fails the push, nothing is committed', async () => {
    server = await startSpecServer({ cutPatch: 1 });
    const data = randomBytes(3 * 1024 * 1024);
    const desc = blobOf(data);
    const changed = Buffer.from(data);
    changed[10] = changed[10]! ^ 1; // before the cut: the registry's copy of it is not sent again
    const first = markReopenable(Readable.from([data]), async () => Readable.from([changed]));
    const s = await store(server.host);
    await expect(s.push(desc, first)).rejects.toThrow(/hashes to sha256:[0-9a-f]{64}, expected/);
    // The resume was tried (the registry asked where it got to), and the reopened bytes were checked.
    expect(server.log.some((l) => l.method === 'GET' && l.url.includes('/uploads/'))).toBe(true);
    expect(server.log.some((l) => l.method === 'PUT')).toBe(false);
    expect(server.blobs.size).toBe(0);
  });

  it('streamed content that does not match its digest is never committed', async () => {
    server = await startSpecServer({});
    const data = randomBytes(3 * 1024 * 1024);
    const wrong = Buffer.from(data);
    wrong[2_000_000] = wrong[2_000_000]! ^ 1;
    const s = await store(server.host);
    await expect(s.push(blobOf(data), Readable.from([wrong]))).rejects.toThrow(/hashes to sha256:[0-9a-f]{64}, expected/);
    expect(server.log.filter((l) => l.method === 'PATCH').length).toBeLessThanOrEqual(1);
    expect(server.log.some((l) => l.method === 'PUT')).toBe(false);
    expect(server.blobs.size).toBe(0);
  });
});

describe('blob download resume', () => {
  for (const rangeSupport of [true, false]) {
    it(`a download cut halfway carries on (${rangeSupport ? '206 from the offset' : 'a 200 with the whole body, skipped ahead'})`, async () => {
      server = await startSpecServer({ cutGet: true, rangeSupport });
      const data = randomBytes(3 * 1024 * 1024);
      const desc = blobOf(data);
      server.blobs.set(desc.digest, data);
      const s = await store(server.host);
      const got: Buffer[] = [];
      for await (const c of await s.fetch(desc)) got.push(c as Buffer);
      expect(Buffer.concat(got).equals(data)).toBe(true);
      const gets = server.log.filter((l) => l.method === 'GET' && l.url.includes('/blobs/sha256:'));
      expect(gets).toHaveLength(2);
      expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    });
  }
});
