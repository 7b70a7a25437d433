/**
 * In-process servers that play a hostile registry, for what the real one cannot be made to do: answer
 * without end, never finish its headers, stall mid-body, loop its pagination, or record what a second
 * origin is sent. Loopback only; stop() cuts every connection.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface FakeServer {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Every request, in order. */
  seen: SeenRequest[];
  stop(): Promise<void>;
}

async function listen(server: Server, sockets: Set<Socket>): Promise<{ host: string; stop: () => Promise<void> }> {
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An HTTP server answering with `handler`; it records each request first. */
export async function startFakeServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeServer> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    handler(req, res);
  });
  const { host, stop } = await listen(server, new Set());
  return { host, origin: `http://${host}`, seen, stop };
}

/** A TCP server that writes `greeting` on every connection, then nothing, ever (a registry that hangs mid-answer). */
export async function startSilentServer(greeting: string): Promise<{ host: string; connections: () => number; stop: () => Promise<void> }> {
  let count = 0;
  const server = createNetServer((s) => {
    count++;
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.write(greeting);
  });
  const { host, stop } = await listen(server, new Set());
  return { host, connections: () => count, stop };
}

/** Writes `byte` in 1 MiB chunks, as fast as the client takes them, until it goes or `limit` bytes went. */
export function streamEndless(res: ServerResponse, limit = 4 * 1024 ** 3, byte = 'x'): void {
  const chunk = Buffer.alloc(1024 * 1024, byte);
  let sent = 0;
  res.on('error', () => undefined);
  const pump = (): void => {
    while (sent < limit && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  pump();
}
