import { lstat, mkdir, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isValidDigest, parseDigest } from '../digest/digest.js';
import type { OciLayout } from '../layout/layout.js';
import { scanLeases } from '../layout/lease.js';
import { isManifestType } from '../spec/media-types.js';
import { Annotation, type Descriptor } from '../spec/types.js';
import { pidOfTempName, processAlive, tempName } from '../util/fs.js';
import { OciToolError, errno } from '../util/errors.js';
import { fetchManifest, walk } from './graph.js';
import type { ParsedManifest } from '../spec/parse.js';

export interface GcOptions {
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  /** Temp files older than this are stale even if their writer still runs (default 24 h). */
  tempMaxAgeMs?: number;
  /** A lease whose owner is not a live process here is stale after this long untouched (default 10 min). */
  leaseStaleMs?: number;
}

export interface GcResult {
  removed: { digest: string; size: number }[];
  freedBytes: number;
  tempFilesRemoved: number;
  /**
   * Untagged index.json entries dropped: referrers (an SBOM, a signature) whose subject nothing else
   * in the layout keeps.
   */
  referrersRemoved: Descriptor[];
  kept: number;
  /** Unreferenced blobs kept because a writer's live lease holds them. */
  leased: number;
}

/**
 * Removes every blob not reachable from `index.json` nor held by a writer's live lease, and stale temp
 * files and leases. Holds the layout's index lock throughout so no tag appears mid-sweep. Nothing is
 * followed: a linked `blobs`, `blobs/ALG` or private folder is refused before anything is removed, and
 * in the temp folder only regular files whose names ocitool made are removed. A reachable manifest that
 * cannot be read aborts the collection before anything is removed (its children would otherwise look
 * unreferenced).
 *
 * A writer records a digest in its lease before it renames the blob into place or relies on finding it
 * stored. So that no such blob is lost to a sweep already under way, garbage is first moved aside, then
 * the leases are read again, and what a lease took meanwhile is put back before the rest is deleted.
 */
export async function gc(layout: OciLayout, opts: GcOptions = {}): Promise<GcResult> {
  await refuseLinkedFolders(layout);
  return layout.withIndexLock(async () => {
    if (!opts.dryRun) await restoreAbandonedTrash(layout);
    const listed: { digest: string; size: number }[] = [];
    for await (const blob of layout.listBlobs()) listed.push(blob);
    const leases = await scanLeases(layout.leaseDir, opts.leaseStaleMs);
    let indexed: Set<string>;
    let orphans: Descriptor[];
    try {
      ({ indexed, orphans } = await reachable(layout, await layout.roots()));
    } catch (err) {
      throw new OciToolError('VERIFY_FAILED', `gc of ${layout.name} aborted, nothing removed: ${(err as Error).message}`, { cause: err });
    }
    // Dropped first: their blobs are then garbage like any other (the lock keeps writers out).
    if (orphans.length > 0 && !opts.dryRun) {
      const gone = new Set(orphans.map((d) => d.digest));
      await layout.replaceIndexLocked((index) => ({ ...index, manifests: index.manifests.filter((d) => d.annotations?.[Annotation.RefName] !== undefined || !gone.has(d.digest)) }));
    }
    const keep = new Set(indexed);
    // Leased digests are roots; a leased manifest keeps what it refers to. A writer's blob may not be
    // there yet, or be half-written: the walk below them tolerates what it cannot read.
    const leaseRoots: Descriptor[] = [];
    for (const [digest, mediaType] of leases.digests) {
      if (keep.has(digest)) continue;
      keep.add(digest);
      const size = isManifestType(mediaType) ? await layout.stat(digest) : undefined;
      if (size !== undefined) leaseRoots.push({ mediaType, digest, size });
    }
    for (const d of await walk(layout, leaseRoots, { onError: () => undefined })) keep.add(d);

    const result: GcResult = { removed: [], freedBytes: 0, tempFilesRemoved: 0, referrersRemoved: orphans, kept: 0, leased: 0 };
    const garbage = listed.filter((b) => !keep.has(b.digest));
    const removed = opts.dryRun ? garbage : await sweep(layout, garbage, new Set(leases.digests.keys()), opts.leaseStaleMs);
    result.kept = listed.length - removed.length;
    result.leased = listed.filter((b) => !indexed.has(b.digest)).length - removed.length;
    for (const blob of removed) {
      result.removed.push(blob);
      result.freedBytes += blob.size;
    }

    const maxAge = opts.tempMaxAgeMs ?? 24 * 3600 * 1000;
    for (const tmp of await layout.listTempFiles()) {
      if (!tmp.isFile) continue;
      const pid = pidOfTempName(tmp.path)!;
      const stale = !processAlive(pid) || Date.now() - tmp.mtimeMs > maxAge;
      if (!stale || pid === process.pid) continue;
      if (!opts.dryRun) await unlink(tmp.path).catch(() => undefined);
      result.tempFilesRemoved++;
    }
    if (!opts.dryRun) for (const path of leases.stale) await unlink(path).catch(() => undefined);
    return result;
  });
}

/**
 * What index.json keeps: everything reachable from its entries, except that an untagged entry that
 * is a referrer (a manifest with a `subject`: what `build --app`'s SBOM, `artifact pack --subject`
 * and copied signatures leave) counts only once its subject is kept by something else. A referrer
 * would otherwise keep its subject alive for ever: every rebuild of a tag leaves the old image and
 * its SBOM in the layout. Those whose subject nothing keeps are `orphans`.
 */
async function reachable(layout: OciLayout, roots: Descriptor[]): Promise<{ indexed: Set<string>; orphans: Descriptor[] }> {
  const plain: Descriptor[] = [];
  let referrers: { descriptor: Descriptor; subject: string }[] = [];
  for (const d of roots) {
    const subject = d.annotations?.[Annotation.RefName] === undefined && isManifestType(d.mediaType) ? subjectOf((await fetchManifest(layout, d)).parsed) : undefined;
    if (subject) referrers.push({ descriptor: d, subject });
    else plain.push(d);
  }
  const indexed = await walk(layout, plain);
  // A referrer of a kept referrer is kept too: until nothing changes (each round keeps one at least).
  for (;;) {
    const ready = referrers.filter((r) => indexed.has(r.subject) || indexed.has(r.descriptor.digest));
    if (ready.length === 0) break;
    referrers = referrers.filter((r) => !ready.includes(r));
    for (const digest of await walk(layout, ready.map((r) => r.descriptor))) indexed.add(digest);
  }
  return { indexed, orphans: referrers.map((r) => r.descriptor) };
}

const subjectOf = (parsed: ParsedManifest): string | undefined =>
  parsed.kind === 'manifest' ? parsed.manifest.subject?.digest : parsed.kind === 'index' ? parsed.index.subject?.digest : undefined;

/**
 * Moves `garbage` into a trash folder, reads the leases again, puts back what a lease took since the
 * first reading (everything, if a lease took a manifest: what it refers to is not known here), and
 * deletes the rest. Returns the blobs deleted.
 */
async function sweep(layout: OciLayout, garbage: { digest: string; size: number }[], leasedBefore: Set<string>, leaseStaleMs?: number): Promise<{ digest: string; size: number }[]> {
  if (garbage.length === 0) return [];
  const trash = tempName(layout.tmpDir, 'trash');
  await mkdir(trash, { recursive: true });
  const moved: { digest: string; size: number; aside: string }[] = [];
  for (const blob of garbage) {
    const aside = join(trash, trashName(blob.digest));
    try {
      await rename(layout.blobPath(blob.digest), aside);
      moved.push({ ...blob, aside });
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw new OciToolError('IO', `cannot remove blob ${blob.digest} from ${layout.name}: ${errno(err) ?? (err as Error).message}`, { cause: err });
    }
  }
  const late = [...(await scanLeases(layout.leaseDir, leaseStaleMs)).digests].filter(([d]) => !leasedBefore.has(d));
  const takenAll = late.some(([, mediaType]) => isManifestType(mediaType));
  const taken = new Set(late.map(([d]) => d));
  const removed: { digest: string; size: number }[] = [];
  for (const blob of moved) {
    if (takenAll || taken.has(blob.digest)) await rename(blob.aside, layout.blobPath(blob.digest));
    else {
      await unlink(blob.aside);
      removed.push({ digest: blob.digest, size: blob.size });
    }
  }
  await rmdir(trash).catch(() => undefined);
  return removed;
}

const trashName = (digest: string): string => {
  const { algorithm, encoded } = parseDigest(digest);
  return `${algorithm}-${encoded}`;
};

/** Puts back the blobs a gc that died mid-sweep had moved aside; they are then judged afresh. */
async function restoreAbandonedTrash(layout: OciLayout): Promise<void> {
  for (const tmp of await layout.listTempFiles()) {
    const pid = pidOfTempName(tmp.path)!;
    if (!tmp.isDirectory || !basename(tmp.path).startsWith('trash-') || processAlive(pid)) continue;
    for (const name of await readdir(tmp.path)) {
      const dash = name.indexOf('-');
      const digest = `${name.slice(0, dash)}:${name.slice(dash + 1)}`;
      if (dash < 0 || !isValidDigest(digest) || !(await lstat(join(tmp.path, name))).isFile()) continue;
      await mkdir(join(layout.dir, 'blobs', name.slice(0, dash)), { recursive: true });
      await rename(join(tmp.path, name), layout.blobPath(digest));
    }
    await rmdir(tmp.path).catch(() => undefined);
  }
}

/** Refuses a layout whose blob folders or private folders are links (or not folders): gc deletes in them. */
async function refuseLinkedFolders(layout: OciLayout): Promise<void> {
  const bad = await layout.linkedFolder();
  if (bad) throw new OciToolError('INVALID_LAYOUT', `gc of ${layout.name} refused, nothing removed: ${bad.rel} ${bad.why}${bad.why === 'is a symbolic link' ? ' (gc deletes only inside the layout)' : ''}`);
}
