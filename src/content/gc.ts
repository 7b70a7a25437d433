import { unlink } from 'node:fs/promises';
import type { OciLayout } from '../layout/layout.js';
import { pidOfTempName, processAlive } from '../util/fs.js';
import { OciToolError } from '../util/errors.js';
import { walk } from './graph.js';

export interface GcOptions {
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  /** Temp files older than this are stale even if their writer still runs (default 24 h). */
  tempMaxAgeMs?: number;
}

export interface GcResult {
  removed: { digest: string; size: number }[];
  freedBytes: number;
  tempFilesRemoved: number;
  kept: number;
}

/**
 * Removes every blob not reachable from `index.json`, and stale temp files. Holds the layout's index
 * lock throughout so no tag appears mid-sweep. A reachable manifest that cannot be read aborts the
 * collection before anything is removed (its children would otherwise look unreferenced).
 */
export async function gc(layout: OciLayout, opts: GcOptions = {}): Promise<GcResult> {
  return layout.withIndexLock(async () => {
    const roots = await layout.roots();
    let reached: Set<string>;
    try {
      reached = await walk(layout, roots);
    } catch (err) {
      throw new OciToolError('VERIFY_FAILED', `gc of ${layout.name} aborted, nothing removed: ${(err as Error).message}`, { cause: err });
    }
    const result: GcResult = { removed: [], freedBytes: 0, tempFilesRemoved: 0, kept: 0 };
    for await (const blob of layout.listBlobs()) {
      if (reached.has(blob.digest)) {
        result.kept++;
        continue;
      }
      if (!opts.dryRun) await layout.deleteBlob(blob.digest);
      result.removed.push(blob);
      result.freedBytes += blob.size;
    }
    const maxAge = opts.tempMaxAgeMs ?? 24 * 3600 * 1000;
    for (const tmp of await layout.listTempFiles()) {
      const pid = pidOfTempName(tmp.path);
      const stale = pid === undefined || !processAlive(pid) || Date.now() - tmp.mtimeMs > maxAge;
      if (!stale || pid === process.pid) continue;
      if (!opts.dryRun) await unlink(tmp.path).catch(() => undefined);
      result.tempFilesRemoved++;
    }
    return result;
  });
}
