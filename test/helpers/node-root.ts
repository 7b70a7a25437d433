/**
 * A root filesystem that runs this host's node: the node binary and the shared libraries ldd says it
 * loads, each at its own path (enough for a base image that buildah runs with chroot isolation).
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Fills `tree` with process.execPath and its libraries; returns the paths copied. */
export async function nodeRootTree(tree: string): Promise<string[]> {
  const libs = execFileSync('ldd', [process.execPath], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
  const files = [process.execPath, ...libs];
  for (const f of files) {
    await mkdir(join(tree, dirname(f)), { recursive: true });
    await copyFile(f, join(tree, f));
  }
  return files;
}
