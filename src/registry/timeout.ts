/**
 * How long a registry request may wait for the registry, by default for the whole process (the CLI's
 * `--timeout`); a RegistryHttp may be given its own. Kept apart from the HTTP code so that setting it
 * does not load the HTTP stack.
 *
 * The bound covers, for one request: connecting, waiting for the answer's headers after the request
 * was sent, and every retry with its backoff together; and, for a body, the longest silence between
 * two chunks. Time spent sending a request body does not count (a slow upload is not a dead registry).
 */
export const DEFAULT_TIMEOUT_SECONDS = 60;
const MAX_TIMEOUT_SECONDS = 24 * 3600;

let current = DEFAULT_TIMEOUT_SECONDS * 1000;

/** The process-wide bound in ms. */
export function registryTimeoutMs(): number {
  return current;
}

/** Sets the process-wide bound (seconds, > 0). */
export function setRegistryTimeout(seconds: number): void {
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_TIMEOUT_SECONDS) throw new RangeError(`timeout out of range: ${seconds}`);
  current = Math.round(seconds * 1000);
}

/** Parses a duration in seconds (`30`, `2.5`, `30s`); undefined when it is not one in range. */
export function parseTimeoutSeconds(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*s?\s*$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n > 0 && n <= MAX_TIMEOUT_SECONDS ? n : undefined;
}

/** `3 s`, `1.5 s`: a bound as the messages say it. */
export const formatSeconds = (ms: number): string => `${Number((ms / 1000).toFixed(3))} s`;
