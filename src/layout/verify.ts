import { verifyStore, type VerifyOptions, type VerifyResult } from '../content/verify.js';
import type { OciLayout } from './layout.js';

/**
 * verifyStore plus the layout's own rules: every entry under blobs/ is a regular file named by a valid
 * digest, in folders of the layout itself. A blob the walk already reported is not reported twice.
 */
export async function verifyLayout(layout: OciLayout, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const listed = (await layout.listBlobFiles()).filter((f) => f.problem !== undefined);
  const result = await verifyStore(layout, opts);
  const reported = new Set(result.problems.map((p) => p.digest));
  const own = listed
    .filter((f) => f.digest === undefined || !reported.has(f.digest))
    .map((f) => ({ ...(f.digest ? { digest: f.digest } : {}), message: `${layout.name}: ${f.path} ${f.problem}` }));
  return { ...result, problems: [...own, ...result.problems] };
}
