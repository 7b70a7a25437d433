import { chmod, link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** What a path in a test tree is: file content, or a directory, symlink or hardlink. */
export type Node = string | { dir: true; mode?: number } | { file: string; mode?: number } | { symlink: string } | { hardlink: string };

/**
 * Creates a tree under `root` from a map of relative paths (parents are created as needed; entries
 * are made in the map's order, so a hardlink must come after its target). Optionally sets every mtime.
 */
export async function makeTree(root: string, spec: Record<string, Node>, opts: { mtime?: Date } = {}): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const [rel, node] of Object.entries(spec)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    if (typeof node === 'string') await writeFile(p, node);
    else if ('dir' in node) {
      await mkdir(p, { recursive: true });
      if (node.mode !== undefined) await chmod(p, node.mode);
    } else if ('file' in node) {
      await writeFile(p, node.file);
      if (node.mode !== undefined) await chmod(p, node.mode);
    } else if ('symlink' in node) await symlink(node.symlink, p);
    else await link(join(root, node.hardlink), p);
  }
  if (opts.mtime) await setMtimes(root, Object.keys(spec), opts.mtime);
}

async function setMtimes(root: string, rels: string[], t: Date): Promise<void> {
  // Deepest first so that setting a file's time does not disturb its directory's afterwards.
  for (const rel of [...rels].sort((a, b) => b.split('/').length - a.split('/').length)) {
    await utimes(join(root, rel), t, t).catch(() => undefined);
  }
  await utimes(root, t, t);
}
