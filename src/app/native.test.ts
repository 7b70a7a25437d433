import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPlatform, hostPlatform, parsePlatform } from '../spec/platform.js';
import { isOciToolError } from '../util/errors.js';
import { nativeCheck } from './native.js';
import type { LockedPackage } from './lockfile.js';

const HOST = hostPlatform();
const OTHER = parsePlatform(formatPlatform(HOST) === 'linux/arm64' ? 'linux/amd64' : 'linux/arm64');
const pkg = (path: string, more: Partial<LockedPackage> = {}): LockedPackage => ({ path, name: path.slice(path.lastIndexOf('/') + 1), version: '1.0.0', optional: false, ...more });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-native-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(check: Promise<void>): Promise<string> {
  const err = await check.then(() => undefined, (e: unknown) => e);
  if (!isOciToolError(err, 'USAGE')) throw new Error(`expected a usage error, got ${String(err)}`);
  return err.message;
}

describe('nativeCheck', () => {
  it("reads nothing when every platform is the host's (a package folder that is not there is no error)", async () => {
    await expect(nativeCheck(dir, [pkg('node_modules/absent', { cpu: ['!x64', '!arm64'] })])([HOST])).resolves.toBeUndefined();
  });

  it('follows npm os/cpu lists: an exclusion (!name) or a list without the platform refuses; a list holding it does not', async () => {
    await mkdir(join(dir, 'node_modules/a'), { recursive: true });
    expect(await refusal(nativeCheck(dir, [pkg('node_modules/a', { os: ['!linux'] })])([OTHER]))).toContain(`a@1.0.0 (node_modules/a) has native parts that cannot serve ${formatPlatform(OTHER)}: its lockfile "os" field ["!linux"] excludes linux`);
    expect(await refusal(nativeCheck(dir, [pkg('node_modules/a', { cpu: ['s390x'] })])([OTHER]))).toContain('its lockfile "cpu" field ["s390x"] excludes');
    await expect(nativeCheck(dir, [pkg('node_modules/a', { os: ['linux', 'darwin'], cpu: ['x64', 'arm64'] })])([OTHER])).resolves.toBeUndefined();
  });

  it("finds a .node file below the package but not in its own node_modules (those packages are checked on their own)", async () => {
    await mkdir(join(dir, 'node_modules/b/node_modules/dev-only/build'), { recursive: true });
    await writeFile(join(dir, 'node_modules/b/node_modules/dev-only/build/x.node'), '');
    await expect(nativeCheck(dir, [pkg('node_modules/b')])([OTHER])).resolves.toBeUndefined();
    await mkdir(join(dir, 'node_modules/b/prebuilds/linux-x64'), { recursive: true });
    await writeFile(join(dir, 'node_modules/b/prebuilds/linux-x64/b.node'), '');
    expect(await refusal(nativeCheck(dir, [pkg('node_modules/b')])([HOST, OTHER]))).toContain('it holds prebuilds/linux-x64/b.node, built for this host');
  });

  it('says so when a package goes deeper than the search looks (a native file there is not seen)', async () => {
    const deep = `node_modules/e/${Array.from({ length: 10 }, (_, i) => `d${i}`).join('/')}`;
    await mkdir(join(dir, deep), { recursive: true });
    await writeFile(join(dir, deep, 'deep.node'), '');
    const warnings: string[] = [];
    await nativeCheck(dir, [pkg('node_modules/e')])([OTHER], (m) => warnings.push(m));
    expect(warnings).toEqual([`--app ${dir}: the search for native dependencies looked 8 folders deep; below that node_modules/e (and any other package as deep) was not checked`]);
  });

  it('stops after its folder budget and says so', async () => {
    await mkdir(join(dir, 'node_modules/c/d1/d2/d3'), { recursive: true });
    await writeFile(join(dir, 'node_modules/c/d1/d2/d3/deep.node'), '');
    const warnings: string[] = [];
    await nativeCheck(dir, [pkg('node_modules/c')], { folders: 2 })([OTHER], (m) => warnings.push(m));
    expect(warnings).toEqual([`--app ${dir}: the search for native dependencies stopped after 2 folders; packages past it were not checked`]);
    expect(await refusal(nativeCheck(dir, [pkg('node_modules/c')])([OTHER]))).toContain('it holds d1/d2/d3/deep.node');
  });
});
