/**
 * RegistryStore and RegistryHttp against in-process fake registries: the bounds that the real
 * registry cannot be made to test (pagination caps, lengths left out, answers that never come).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { startFakeServer, type FakeServer } from '../../test/helpers/fake-registry.js';
import { RegistryTimeout } from './errors.js';
import { RegistryStore, readHead } from './store.js';
import { DEFAULT_TIMEOUT_SECONDS, parseTimeoutSeconds } from './timeout.js';

const BLOB = `sha256:${'a'.repeat(64)}`;

async function withFake<T>(handler: (req: IncomingMessage, res: ServerResponse) => void, fn: (s: FakeServer) => Promise<T>): Promise<T> {
  const s = await startFakeServer((req, res) => {
    if (req.url === '/v2/') res.writeHead(200).end('{}');
    else handler(req, res);
  });
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

const tagRequests = (s: FakeServer): number => s.seen.filter((q) => q.url.includes('/tags/list')).length;

describe('listTags', () => {
  it('leaves out listed names that are no tag (../other/manifests/x, control characters, 4 KiB names); references that are neither tag nor digest never reach a URL', async () => {
    await withFake(
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tags: ['v1', '../../../victim/manifests/latest', 'a\u001b[2Jb', 'x'.repeat(4096), 'v2', 7] }));
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r');
        const warned: string[] = [];
        expect(await store.listTags({ warn: (m) => warned.push(m) })).toEqual(['v1', 'v2']);
        expect(warned).toEqual([`${s.host}: tags of r: 4 listed name(s) are not valid tags and were left out`]);
        await expect(store.resolve('../../../victim/manifests/latest')).rejects.toThrow(/is neither a tag nor a digest/);
        expect(s.seen.some((q) => q.url.includes('victim'))).toBe(false);
      },
    );
  });

  it('stops at a page that brings no new tag, and refuses more pages or tags than the caps', async () => {
    // Every page names a new next page; pages bring `perPage` tags each (new ones unless `stale`).
    let perPage = 1;
    let stale = false;
    await withFake(
      (req, res) => {
        const n = Number(new URL(req.url!, 'http://x').searchParams.get('last') ?? 0);
        const tags = Array.from({ length: perPage }, (_, i) => (stale ? 'same' : `t${n * perPage + i}`));
        res.writeHead(200, { 'content-type': 'application/json', link: `</v2/r/tags/list?last=${n + 1}>; rel="next"` }).end(JSON.stringify({ tags }));
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r');
        await expect(store.listTags({ maxPages: 20 })).rejects.toThrow(`${s.host}: tags of r: more than 20 pages of tags; giving up`);
        expect(tagRequests(s)).toBe(20);
        perPage = 30;
        await expect(store.listTags({ maxTags: 100 })).rejects.toThrow(`${s.host}: tags of r: more than 100 tags; giving up`);
        expect(tagRequests(s)).toBe(24);
        stale = true;
        expect(await store.listTags()).toEqual(['same']);
        expect(tagRequests(s)).toBe(26);
      },
    );
  });
});

describe('blobSize', () => {
  it('a HEAD without Content-Length asks a GET for it; without one there either, the size is unknown', async () => {
    let chunked = false;
    await withFake(
      (req, res) => {
        if (req.method === 'HEAD') res.writeHead(200).end();
        else if (chunked) {
          res.writeHead(200);
          res.write('x'.repeat(1000));
          res.end('y'.repeat(234));
        } else res.writeHead(200, { 'content-length': '777' }).end('z'.repeat(777));
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r');
        expect(await store.blobSize(BLOB)).toBe(777);
        chunked = true;
        expect(await store.blobSize(BLOB)).toBeUndefined();
        expect(s.seen.map((q) => q.method)).toEqual(['HEAD', 'GET', 'HEAD', 'GET']);
      },
    );
  });
});

describe('the request bound', () => {
  it('an upload chunk without an answer fails once, as a timeout, without the chunk retries', async () => {
    await withFake(
      (req, res) => {
        req.resume();
        if (req.method === 'POST') res.writeHead(202, { location: '/v2/r/blobs/uploads/u1', 'content-length': '0' }).end();
        // PATCH: never answered.
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r', { push: true, chunkSize: 64 * 1024, timeoutMs: 800 });
        const data = Buffer.alloc(200 * 1024, 1);
        const started = Date.now();
        const err = await store.push({ mediaType: 'application/octet-stream', digest: BLOB, size: data.length }, Readable.from([data])).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryTimeout);
        expect((err as Error).message).toMatch(new RegExp(`^${s.host}: upload of blob ${BLOB} to r \\(bytes 0-65535\\): timed out: no answer within 0.8 s`));
        expect(Date.now() - started).toBeLessThan(3_000);
        expect(s.seen.filter((q) => q.method === 'PATCH')).toHaveLength(1);
      },
    );
  });

  /** A registry that takes uploads: POST, then PATCH (read whole) and PUT answered at once. */
  const uploads = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    req.once('end', () => {
      if (req.method === 'POST' || req.method === 'PATCH') res.writeHead(202, { location: '/v2/r/blobs/uploads/u1', 'content-length': '0' }).end();
      else if (req.method === 'PUT') res.writeHead(201, { 'content-length': '0' }).end();
      else res.writeHead(404, { 'content-length': '0' }).end();
    });
  };

  it('a streamed upload from a slow source is no timeout: only bytes waiting for the registry count', async () => {
    await withFake(uploads, async (s) => {
      const store = new RegistryStore(s.host, 'r', { push: true, timeoutMs: 800 });
      // Past the 1 MiB a blob may be to go up in the final PUT, then 8 small pieces (never enough to
      // fill the socket's buffer), 300 ms apart: 2.4 s in all, three times the bound.
      const slow = Readable.from((async function* () {
        yield Buffer.alloc(1024 * 1024 + 1, 9);
        for (let i = 0; i < 8; i++) {
          await new Promise((r) => setTimeout(r, 300));
          yield Buffer.alloc(1024, i);
        }
      })());
      const put = await store.pushStream(slow);
      expect(put.size).toBe(1024 * 1024 + 1 + 8 * 1024);
      expect(s.seen.map((q) => q.method)).toEqual(['POST', 'PATCH', 'PUT']);
    });
  });

  it('a registry that stops taking a streamed upload: one timeout line after the bound', async () => {
    await withFake(
      (req, res) => {
        if (req.method === 'POST') {
          req.resume();
          res.writeHead(202, { location: '/v2/r/blobs/uploads/u1', 'content-length': '0' }).end();
        } else if (req.method === 'PATCH') req.pause(); // never read, never answered
        else uploads(req, res);
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r', { push: true, timeoutMs: 800 });
        const mib = Buffer.alloc(1024 * 1024, 7);
        const started = Date.now();
        const err = await store.pushStream(Readable.from(Array.from({ length: 64 }, () => mib))).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryTimeout);
        expect((err as Error).message).toBe(`${s.host}: upload of a new blob to r: timed out: no answer within 0.8 s (--timeout)`);
        expect(Date.now() - started).toBeLessThan(4_000);
      },
    );
  });

  it('retries fit in the bound: a 503 with a long Retry-After is not waited for', async () => {
    await withFake(
      (req, res) => res.writeHead(503, { 'retry-after': '30', 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE"}]}'),
      async (s) => {
        const store = new RegistryStore(s.host, 'r', { timeoutMs: 2_000 });
        const started = Date.now();
        await expect(store.exists({ mediaType: 'application/octet-stream', digest: BLOB, size: 1 })).rejects.toThrow(`${s.host}: blobs ${BLOB}: HTTP 503`);
        expect(Date.now() - started).toBeLessThan(1_500);
      },
    );
  });

  it('connection failures are retried within the bound', async () => {
    // Nothing listens on the port a stopped server had.
    const gone = await startFakeServer(() => undefined);
    await gone.stop();
    const store = new RegistryStore(gone.host, 'r', { timeoutMs: 5_000, backoffMs: 50 });
    await expect(store.exists({ mediaType: 'application/octet-stream', digest: BLOB, size: 1 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('defaults to 60 s; --timeout takes seconds', () => {
    expect(DEFAULT_TIMEOUT_SECONDS).toBe(60);
    expect(parseTimeoutSeconds('30')).toBe(30);
    expect(parseTimeoutSeconds('2.5s')).toBe(2.5);
    for (const bad of ['0', '-1', 'soon', '', '1e3', '100000']) expect(parseTimeoutSeconds(bad)).toBeUndefined();
  });
});

describe('readHead', () => {
  /** `pieces` handed out one by one, each after a turn of the event loop (as a compressor does). */
  const slowly = (pieces: Buffer[]): Readable => Readable.from((async function* () {
    for (const p of pieces) {
      await new Promise((r) => setImmediate(r));
      yield p;
    }
  })());
  const rest = async (s: Readable): Promise<Buffer> => {
    const out: Buffer[] = [];
    for await (const c of s) out.push(c as Buffer);
    return Buffer.concat(out);
  };
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));

  it('a stream that ends within max: all of it, ended', async () => {
    expect(await readHead(slowly([data.subarray(0, 10), data.subarray(10, 3000), data.subarray(3000)]), 6000)).toEqual({ bytes: data, ended: true });
    expect(await readHead(slowly([]), 10)).toEqual({ bytes: Buffer.alloc(0), ended: true });
  });

  it('exactly max bytes is ended; max + 1 is not', async () => {
    expect(await readHead(slowly([data.subarray(0, 2500), data.subarray(2500)]), 5000)).toEqual({ bytes: data, ended: true });
    const over = await readHead(slowly([data.subarray(0, 2500), data.subarray(2500)]), 4999);
    expect(over.ended).toBe(false);
    expect(over.bytes.length).toBeGreaterThan(4999);
  });

  it('a stream past max holds what was read again: read first, the rest after it in order', async () => {
    const pieces = Array.from({ length: 50 }, (_, i) => data.subarray(i * 100, i * 100 + 100));
    const s = slowly(pieces);
    const head = await readHead(s, 1000);
    expect(head.ended).toBe(false);
    expect(head.bytes.length).toBeGreaterThan(1000);
    expect(head.bytes.equals(data.subarray(0, head.bytes.length))).toBe(true);
    expect((await rest(s)).equals(data)).toBe(true);
  });

  it('a stream whose last byte is max + 1 keeps its bytes past a turn of the event loop (its end is not emitted over them)', async () => {
    // The read that takes the last byte empties the stream at its end: its 'end' comes at the next
    // tick, after which bytes can no longer be put back (a pushStream of 1 MiB + 1 lost them all).
    for (const make of [() => slowly([data.subarray(0, 1000), data.subarray(1000, 1001)]), () => Readable.from([data.subarray(0, 1001)])]) {
      const s = make();
      const head = await readHead(s, 1000);
      expect(head.ended).toBe(false);
      await new Promise((r) => setImmediate(r));
      expect((await rest(s)).equals(data.subarray(0, 1001))).toBe(true);
    }
  });

  it('a stream that errors before its end rejects with its error; one closed without an error, with an IO error', async () => {
    const broken = new Readable({ read() {} });
    broken.push(data.subarray(0, 100));
    setTimeout(() => broken.destroy(new Error('compressor failed')), 20);
    await expect(readHead(broken, 1000)).rejects.toThrow('compressor failed');
    const closed = new Readable({ read() {} });
    closed.push(data.subarray(0, 100));
    setTimeout(() => closed.destroy(), 20);
    await expect(readHead(closed, 1000)).rejects.toThrow("the blob's stream was closed before its end");
  });

  it('an aborted signal rejects, before the read and while it waits on a stream that gives nothing', async () => {
    const gone = new AbortController();
    gone.abort(new Error('stopped before'));
    await expect(readHead(slowly([data]), 10_000, gone.signal)).rejects.toThrow('stopped before');
    const waiting = new Readable({ read() {} });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stopped while waiting')), 20);
    const started = Date.now();
    await expect(readHead(waiting, 1000, ac.signal)).rejects.toThrow('stopped while waiting');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(waiting.listenerCount('readable') + waiting.listenerCount('end') + waiting.listenerCount('error')).toBe(0);
  });
});

describe('exists', () => {
  it('a digest the repository holds as a blob is still asked about as a manifest (a registry may keep the two apart)', async () => {
    await withFake(
      (req, res) => {
        // The digest is a blob of the repository, and no manifest of it.
        res.writeHead(req.url === `/v2/r/blobs/${BLOB}` ? 200 : 404, { 'content-length': '0' }).end();
      },
      async (s) => {
        const store = new RegistryStore(s.host, 'r');
        expect(await store.exists({ mediaType: 'application/octet-stream', digest: BLOB, size: 2 })).toBe(true);
        expect(await store.exists({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: BLOB, size: 2 })).toBe(false);
        expect(await store.exists({ mediaType: 'application/octet-stream', digest: BLOB, size: 2 })).toBe(true);
        expect(s.seen.filter((q) => q.method === 'HEAD').map((q) => q.url)).toEqual([`/v2/r/blobs/${BLOB}`, `/v2/r/manifests/${BLOB}`]);
      },
    );
  });
});
