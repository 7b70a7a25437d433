import { verifyStore, type VerifyOptions, type VerifyResult } from '../content/verify.js';
import type { OciLayout } from './layout.js';

/** verifyStore plus the layout's own rules: every file under blobs/ is named by a valid digest. */
export async function verifyLayout(layout: OciLayout, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const badNames = (await layout.listBlobFiles())
    .filter((f) => f.digest === undefined)
    .map((f) => ({ message: `${layout.name}: ${f.path} is not a blob named by a valid digest` }));
  return verifyStore(layout, { ...opts, extraProblems: [...(opts.extraProblems ?? []), ...badNames] });
}
