/**
 * A reverse proxy in front of a test registry that misbehaves on purpose: per request it may answer
 * 503, 429 with Retry-After, drop the connection partway through a response body, or flip bytes in a
 * blob. Registries cannot be made to fail on demand; this stands between the client and the real one.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * 'drop': cut the response body halfway; 'drop-request': pass half the request body on, then cut both
 * connections (an upload interrupted mid-body); 'corrupt': flip a byte of the response body;
 * 'no-length': pass the answer on without its Content-Length; `{ relocate: ORIGIN }`: pass the answer
 * on with its Location header moved to ORIGIN (scheme://host:port, path and query kept); 'slow' and
 * 'slow-request': the response body, or the request body (an upload), passed on at about 2 MB/s;
 * `{ lost }`: the registry gets the request and answers, the client gets a 504 or a cut connection instead.
 */
export type Fault =
  | 'none' | '503' | '429' | 'drop' | 'drop-request' | 'corrupt' | 'slow' | 'slow-request' | 'no-length'
  | { redirect: string } | { unauthorized: string } | { relocate: string }
  /** Pass the request on (the registry acts on it), then lose its answer: a 504 instead, or a cut connection. */
  | { lost: '504' | 'drop' }
  /** Pass the answer on with these headers added. */
  | { addHeaders: Record<string, string> };

export interface FaultProxy {
  host: string;
  /** Requests seen, with the fault applied to each. */
  log: { method: string; path: string; fault: Fault; range?: string; contentRange?: string }[];
  /** The most requests that were open at once (received, answer not yet finished). */
  peakInFlight(): number;
  /** Request body bytes the proxy received, by method. */
  bytesIn: Record<string, number>;
  stop(): Promise<void>;
}

/** `decide` picks a fault for the n-th request (1-based). */
export async function startFaultProxy(target: string, decide: (n: number, method: string, path: string) => Fault): Promise<FaultProxy> {
  const log: FaultProxy['log'] = [];
  let n = 0;
  let open = 0;
  let peak = 0;
  const bytesIn: Record<string, number> = {};
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    open++;
    peak = Math.max(peak, open);
    res.once('close', () => open--);
    req.on('data', (c: Buffer) => (bytesIn[req.method ?? 'GET'] = (bytesIn[req.method ?? 'GET'] ?? 0) + c.length));
    const fault = decide(++n, req.method ?? 'GET', req.url ?? '/');
    const range = req.headers.range;
    const contentRange = req.headers['content-range'];
    log.push({ method: req.method ?? 'GET', path: req.url ?? '/', fault, ...(range ? { range } : {}), ...(contentRange ? { contentRange } : {}) });
    if (typeof fault === 'object' && 'unauthorized' in fault) {
      // As a registry does when a token was revoked or ran out: 401 with the challenge.
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': fault.unauthorized });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'injected by the test proxy' }] }));
      return;
    }
    if (typeof fault === 'object' && 'redirect' in fault) {
      req.resume();
      res.writeHead(307, { location: `${fault.redirect}${req.url ?? '/'}` }).end();
      return;
    }
    if (fault === '503' || fault === '429') {
      req.resume();
      res.writeHead(Number(fault), { 'content-type': 'application/json', ...(fault === '429' ? { 'retry-after': '1' } : {}) });
      res.end(JSON.stringify({ errors: [{ code: fault === '429' ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected by the test proxy' }] }));
      return;
    }
    const [host, port] = target.split(':');
    const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      if (typeof fault === 'object' && 'lost' in fault) {
        upRes.resume();
        upRes.once('end', () => {
          if (fault.lost === 'drop') res.socket?.destroy();
          else res.writeHead(504, { 'content-type': 'text/html' }).end('<html><body>504 Gateway Time-out</body></html>');
        });
        return;
      }
      const headers = { ...upRes.headers, ...(typeof fault === 'object' && 'addHeaders' in fault ? fault.addHeaders : {}) };
      if (fault === 'no-length') delete headers['content-length'];
      if (typeof fault === 'object' && 'relocate' in fault && headers.location) {
        const moved = new URL(headers.location, `http://${req.headers.host ?? target}`);
        headers.location = `${fault.relocate}${moved.pathname}${moved.search}`;
      }
      res.writeHead(upRes.statusCode ?? 502, headers);
      if (fault === 'drop') {
        // Half the body (the client gets time to take it in), then the connection goes.
        const half = Math.floor(Number(upRes.headers['content-length'] ?? 0) / 2);
        let sent = 0;
        upRes.on('data', (c: Buffer) => {
          if (sent >= half) return;
          const part = c.subarray(0, Math.max(1, half - sent));
          sent += part.length;
          res.write(part);
          if (sent >= half) {
            upRes.destroy();
            setTimeout(() => res.socket?.destroy(), 100);
          }
        });
        return;
      }
      if (fault === 'slow') {
        // About 2 MB/s: long enough to be interrupted at a chosen moment.
        upRes.on('data', (c: Buffer) => {
          upRes.pause();
          res.write(c, () => setTimeout(() => upRes.resume(), 20));
        });
        upRes.on('end', () => res.end());
        return;
      }
      if (fault === 'corrupt') {
        upRes.on('data', (c: Buffer) => {
          const b = Buffer.from(c);
          b[0] = b[0]! ^ 0xff;
          res.write(b);
        });
        upRes.on('end', () => res.end());
        return;
      }
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    if (fault === 'slow-request') {
      req.on('data', (c: Buffer) => {
        req.pause();
        up.write(c, () => setTimeout(() => req.resume(), 20));
      });
      req.on('end', () => up.end());
      req.on('close', () => {
        if (!req.complete) up.destroy();
      });
      return;
    }
    if (fault === 'drop-request') {
      const half = Math.floor(Number(req.headers['content-length'] ?? 0) / 2);
      let passed = 0;
      req.on('data', (c: Buffer) => {
        if (passed >= half) return;
        const part = c.subarray(0, half - passed);
        passed += part.length;
        up.write(part);
        if (passed >= half) {
          // Let the registry take in what it got, then cut both sides.
          setTimeout(() => {
            up.destroy();
            req.socket.destroy();
          }, 200);
        }
      });
      return;
    }
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    peakInFlight: () => peak,
    bytesIn,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
