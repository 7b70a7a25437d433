import { MAX_JSON_BYTES, parseJson } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';
import { isValidRepositoryPath, isValidTag } from '../reference/docker-name.js';
import type { RegistryHttp } from './http.js';

export interface TagListOptions {
  /** Names asked for per page (`n`, default 1000). */
  pageSize?: number;
  /** Pages followed at most (default 5000). */
  maxPages?: number;
  /** Names taken at most (default 1 000 000). */
  /** Told of listed names that are not valid (left out). */
  warn?: (message: string) => void;
  maxTags?: number;
}

/**
 * The tags of a repository (`GET /v2/NAME/tags/list?n=…`, see listPages for the bounds).
 */
export function listTags(http: RegistryHttp, repository: string, scopes: string[], opts: TagListOptions = {}): Promise<string[]> {
  return listPages(http, `/v2/${repository}/tags/list`, 'tags', scopes, `tags of ${repository}`, opts, isValidTag);
}

/** The repositories a registry lists (`GET /v2/_catalog?n=…`; the `registry:catalog:*` scope). */
export function listRepositories(http: RegistryHttp, opts: TagListOptions = {}): Promise<string[]> {
  return listPages(http, '/v2/_catalog', 'repositories', ['registry:catalog:*'], 'catalog', opts, isValidRepositoryPath);
}

/**
 * The strings of `key` in a paginated listing, following `Link: <…>; rel="next"`. A registry's
 * pagination cannot run forever: a page whose URL was seen before, or that brings nothing new, ends
 * the listing (everything reachable has been read by then); more pages or names than the caps is an
 * error naming the registry. Each page is read under the JSON document cap.
 */
async function listPages(http: RegistryHttp, path: string, key: string, scopes: string[], what: string, opts: TagListOptions, valid: (name: string) => boolean): Promise<string[]> {
  const maxPages = opts.maxPages ?? 5000;
  const maxNames = opts.maxTags ?? 1_000_000;
  const names = new Set<string>();
  const seen = new Set<string>();
  let next: string | undefined = new URL(`${path}?n=${opts.pageSize ?? 1000}`, await http.base()).href;
  while (next !== undefined && !seen.has(next)) {
    if (seen.size >= maxPages) throw new OciToolError('TOO_LARGE', `${http.host}: ${what}: more than ${maxPages} pages of ${key}; giving up`);
    seen.add(next);
    const res = await http.request('GET', next, { scopes, what });
    const page = parseJson(await res.bytes(MAX_JSON_BYTES), `${http.host}: ${what}`) as Record<string, unknown> | null;
    const value = page !== null && typeof page === 'object' ? page[key] : undefined;
    const list = Array.isArray(value) ? (value as unknown[]) : [];
    const before = names.size;
    let refused = 0;
    for (const t of list) {
      // A name that is no valid tag (or repository) is dropped: it would otherwise go into URLs
      // (`../../other/manifests/x` names another repository) and messages.
      if (typeof t !== 'string' || !valid(t)) {
        refused++;
        continue;
      }
      names.add(t);
      if (names.size > maxNames) throw new OciToolError('TOO_LARGE', `${http.host}: ${what}: more than ${maxNames} ${key}; giving up`);
    }
    if (refused > 0) opts.warn?.(`${http.host}: ${what}: ${refused} listed name(s) are not valid ${key} and were left out`);
    if (names.size === before) break;
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '');
    next = link ? new URL(link[1]!, res.url).href : undefined;
  }
  return [...names];
}
