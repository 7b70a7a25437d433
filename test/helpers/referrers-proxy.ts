/**
 * A registry with the referrers API (distribution-spec 1.1), made of the real registry (distribution
 * 2.8, which has none) and this proxy in front of it: requests pass through; a manifest PUT whose
 * body names a `subject` is recorded, and its answer carries `OCI-Subject` as a 1.1 registry's does;
 * `GET /v2/NAME/referrers/DIGEST[?artifactType=T]` is answered with an OCI index of what was
 * recorded for that subject (empty when nothing was). The registry's own answers are untouched.
 */
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReferrersProxy {
  host: string;
  /** Every request, in order (method and path with query). */
  log: { method: string; path: string }[];
  stop(): Promise<void>;
}

const INDEX = 'application/vnd.oci.image.index.v1+json';
const REFERRERS = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})(?:\?(.*))?$/;
const MANIFEST_PUT = /^\/v2\/(.+)\/manifests\/[^/?]+$/;

export async function startReferrersProxy(target: string): Promise<ReferrersProxy> {
  const log: ReferrersProxy['log'] = [];
  /** By `repository subject`: the referrers' descriptors. */
  const referrers = new Map<string, Map<string, Record<string, unknown>>>();
  const [host, port] = target.split(':');
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    log.push({ method: req.method ?? 'GET', path });
    const api = req.method === 'GET' ? REFERRERS.exec(path) : null;
    if (api) {
      req.resume();
      const wanted = new URLSearchParams(api[3] ?? '').get('artifactType');
      const found = [...(referrers.get(`${api[1]} ${api[2]}`)?.values() ?? [])].filter((d) => wanted === null || d.artifactType === wanted);
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: found }));
      res.writeHead(200, { 'content-type': INDEX, 'content-length': String(body.length), ...(wanted !== null ? { 'oci-filters-applied': 'artifactType' } : {}) }).end(body);
      return;
    }
    const chunks: Buffer[] = [];
    const put = req.method === 'PUT' ? MANIFEST_PUT.exec(path) : null;
    req.on('data', (c: Buffer) => {
      if (put) chunks.push(c);
    });
    const up = httpRequest({ host, port: Number(port), method: req.method, path, headers: req.headers }, (upRes) => {
      const headers = { ...upRes.headers };
      if (put && upRes.statusCode === 201) {
        const bytes = Buffer.concat(chunks);
        let doc: { mediaType?: string; artifactType?: string; config?: { mediaType?: string }; subject?: { digest?: string }; annotations?: Record<string, string> } = {};
        try {
          doc = JSON.parse(bytes.toString()) as typeof doc;
        } catch {
          // not JSON: the registry refused it already, or it is no referrer
        }
        const subject = doc.subject?.digest;
        if (typeof subject === 'string') {
          const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
          const key = `${put[1]} ${subject}`;
          if (!referrers.has(key)) referrers.set(key, new Map());
          const artifactType = doc.artifactType ?? doc.config?.mediaType;
          referrers.get(key)!.set(digest, {
            mediaType: doc.mediaType ?? req.headers['content-type'],
            digest,
            size: bytes.length,
            ...(artifactType ? { artifactType } : {}),
            ...(doc.annotations ? { annotations: doc.annotations } : {}),
          });
          headers['oci-subject'] = subject;
        }
      }
      res.writeHead(upRes.statusCode ?? 502, headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
