import { OciToolError } from '../util/errors.js';

/** One entry of a registry's `{"errors":[…]}` body. */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** Statuses worth sending the same request again for (an upload the registry lost is not one). */
export const retryableStatus = (status: number): boolean => RETRYABLE_STATUS.has(status);
const RETRYABLE_CODES = new Set(['BLOB_UPLOAD_INVALID', 'TOOMANYREQUESTS', 'UNKNOWN', 'UNAVAILABLE']);

/**
 * A request a registry refused or failed. Keeps the HTTP status, the registry's error codes, and
 * whether trying again may help. The message is one line naming registry, repository and what failed.
 */
export class RegistryError extends OciToolError {
  readonly status: number;
  readonly errors: RegistryErrorDetail[];
  /** Whether starting the transfer over may help (a retryable status, or an upload the registry lost). */
  readonly retryable: boolean;
  /** Seconds from a Retry-After header, if any. */
  readonly retryAfter?: number;

  constructor(message: string, status: number, errors: RegistryErrorDetail[], retryAfter?: number) {
    super(status === 404 ? 'NOT_FOUND' : 'REGISTRY', message);
    this.name = 'RegistryError';
    this.status = status;
    this.errors = errors;
    this.retryable = RETRYABLE_STATUS.has(status) || errors.some((e) => RETRYABLE_CODES.has(e.code));
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/**
 * A registry that did not answer, or stalled mid-answer, within the request bound (`--timeout`): the
 * request has had its retries already, so the copy does not start it over.
 */
export class RegistryTimeout extends OciToolError {
  /** Final: its network cause (a headers or body timeout) must not make it look worth a retry. */
  readonly retryable = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super('REGISTRY', message, options);
    this.name = 'RegistryTimeout';
  }
}

/** Reads an error body leniently: proxies and storage backends send HTML or nothing. */
export function parseErrorBody(text: string): RegistryErrorDetail[] {
  try {
    const v = JSON.parse(text) as { errors?: unknown };
    if (Array.isArray(v.errors)) {
      return v.errors.filter((e): e is RegistryErrorDetail => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string');
    }
  } catch {
    /* not JSON */
  }
  return [];
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date). */
export function parseRetryAfter(v: string | null): number | undefined {
  if (v === null) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, (t - Date.now()) / 1000);
}

/** What a status means to a user, for the one-line message. */
export function describeStatus(status: number, errors: RegistryErrorDetail[]): string {
  const codes = errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
  const what =
    status === 401 ? 'authentication required or credentials rejected (401)'
    : status === 403 ? 'access denied (403)'
    : status === 404 ? 'not found (404)'
    : status === 429 ? 'too many requests (429)'
    : `HTTP ${status}`;
  return codes ? `${what}: ${codes}` : what;
}
