/**
 * Process-wide settings of the registry client that the CLI's global flags set (`--chunk-size`, and the
 * connection cap from `--concurrency`), kept apart from the HTTP code so that setting them does not
 * load the HTTP stack. A RegistryStore may be given its own chunk size.
 */

/** Chunks smaller than this are refused (a registry would take thousands of requests per layer). */
export const MIN_CHUNK_SIZE = 64 * 1024;
/** Default connections per registry origin: the copy's default concurrency (4) and a few spare. */
export const DEFAULT_CONNECTIONS_PER_HOST = 8;

let chunkSize: number | undefined;
let connectionsPerHost = DEFAULT_CONNECTIONS_PER_HOST;

/** The chunk size `--chunk-size` asked for, or undefined: blobs go up in one streaming PATCH. */
export function uploadChunkSize(): number | undefined {
  return chunkSize;
}

export function setUploadChunkSize(bytes: number | undefined): void {
  if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < MIN_CHUNK_SIZE)) throw new RangeError(`chunk size out of range: ${bytes}`);
  chunkSize = bytes;
}

/** How many connections the HTTP stack opens to one registry origin at most (requests past it queue). */
export function maxConnectionsPerHost(): number {
  return connectionsPerHost;
}

export function setMaxConnectionsPerHost(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`connections out of range: ${n}`);
  connectionsPerHost = n;
}
