/**
 * buildah (containers/image, as podman and skopeo) opens and runs what ocitool writes into OCI layouts
 * and oci-archives: a Docker schema 2 image pulled into a layout becomes OCI there, tagged or not.
 * `buildah run --isolation chroot` works on these machines (podman containers do not start here).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocitool } from './helpers/cli.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { runTool, type ToolResult } from './helpers/tools.js';

let work: string;
let reg: TestRegistry;
let storage: string[];

const buildah = (args: string[]): Promise<ToolResult> => runTool('buildah', [...storage, ...args], { timeoutMs: 60_000 });
const ok = async (p: Promise<ToolResult>): Promise<string> => {
  const r = await p;
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};

/** `buildah from REF`, then runs busybox echo inside it with chroot isolation; what it printed. */
async function runIn(ref: string, word: string): Promise<string> {
  const ctr = (await ok(buildah(['from', '--pull-never', ref]))).trim();
  try {
    return (await ok(buildah(['run', '--isolation', 'chroot', ctr, '--', '/bin/busybox', 'echo', word]))).trim();
  } finally {
    await buildah(['rm', ctr]);
  }
}

beforeAll(async () => {
  // Lower case: buildah names the image after its path, and image names are lower case.
  work = join(tmpdir(), `ocitool-buildah-${randomBytes(6).toString('hex')}`);
  await mkdir(work);
  // Its own storage: nothing of the machine's /var/lib/containers is used or left behind.
  storage = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  // busybox must be static: nothing else is in the image.
  expect(() => execFileSync('ldd', ['/bin/busybox'], { stdio: 'ignore' })).toThrow();
  await mkdir(join(work, 'tree', 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(work, 'tree', 'bin', 'busybox'));
  reg = await startRegistry();
  const built = await ocitool(['build', '-q', '--format', 'docker', '--tag', `docker://${reg.host}/bb/box:v1`, '--add', `${join(work, 'tree')}:/`, '--entrypoint', '/bin/busybox']);
  expect(built.code, built.stderr).toBe(0);
}, 60_000);
afterAll(async () => {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('buildah runs what ocitool writes', () => {
  it('a Docker image pulled into a layout (OCI there), tagged and untagged', async () => {
    const tagged = join(work, 'tagged');
    expect((await ocitool(['pull', '-q', `docker://${reg.host}/bb/box:v1`, `oci:${tagged}:v1`])).code).toBe(0);
    expect(await runIn(`oci:${tagged}:v1`, 'tagged')).toBe('tagged');
    const untagged = join(work, 'untagged');
    expect((await ocitool(['pull', '-q', `docker://${reg.host}/bb/box:v1`, `oci:${untagged}`])).code).toBe(0);
    expect(await runIn(`oci:${untagged}`, 'untagged')).toBe('untagged');
  }, 120_000);

  it('an oci-archive, and an image mutate changed', async () => {
    const archive = join(work, 'box.tar');
    expect((await ocitool(['copy', '-q', `docker://${reg.host}/bb/box:v1`, `oci-archive:${archive}:v1`])).code).toBe(0);
    expect(await runIn(`oci-archive:${archive}:v1`, 'archived')).toBe('archived');
    const layout = join(work, 'mutated');
    expect((await ocitool(['mutate', `docker://${reg.host}/bb/box:v1`, '--tag', `oci:${layout}:m`, '--env', 'GREETING=hi'])).code).toBe(0);
    expect(await runIn(`oci:${layout}:m`, 'mutated')).toBe('mutated');
  }, 120_000);
});
