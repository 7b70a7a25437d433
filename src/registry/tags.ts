import { MAX_JSON_BYTES, parseJson } from '../spec/parse.js';
import { OciToolError } from '../util/errors.js';
import type { RegistryHttp } from './http.js';

export interface TagListOptions {
  /** Tags asked for per page (`n`, default 1000). */
  pageSize?: number;
  /** Pages followed at most (default 5000). */
  maxPages?: number;
  /** Tags taken at most (default 1 000 000). */
  maxTags?: number;
}

/**
 * The tags of a repository (`GET /v2/NAME/tags/list?n=…`), following `Link: <…>; rel="next"`. A
 * registry's pagination cannot run forever: a page whose URL was seen before, or that brings no new
 * tag, ends the listing (everything reachable has been read by then); more pages or tags than the
 * caps is an error naming the registry. Each page is read under the JSON document cap.
 */
export async function listTags(http: RegistryHttp, repository: string, scopes: string[], opts: TagListOptions = {}): Promise<string[]> {
  const maxPages = opts.maxPages ?? 5000;
  const maxTags = opts.maxTags ?? 1_000_000;
  const what = `tags of ${repository}`;
  const tags = new Set<string>();
  const seen = new Set<string>();
  let next: string | undefined = new URL(`/v2/${repository}/tags/list?n=${opts.pageSize ?? 1000}`, await http.base()).href;
  while (next !== undefined && !seen.has(next)) {
    if (seen.size >= maxPages) throw new OciToolError('TOO_LARGE', `${http.host}: ${what}: more than ${maxPages} pages of tags; giving up`);
    seen.add(next);
    const res = await http.request('GET', next, { scopes, what });
    const page = parseJson(await res.bytes(MAX_JSON_BYTES), `${http.host}: ${what}`) as { tags?: unknown } | null;
    const list = page !== null && typeof page === 'object' && Array.isArray(page.tags) ? page.tags : [];
    const before = tags.size;
    for (const t of list) {
      if (typeof t !== 'string') continue;
      tags.add(t);
      if (tags.size > maxTags) throw new OciToolError('TOO_LARGE', `${http.host}: ${what}: more than ${maxTags} tags; giving up`);
    }
    if (tags.size === before) break;
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '');
    next = link ? new URL(link[1]!, res.url).href : undefined;
  }
  return [...tags];
}
