/** buildImage with a base still being resolved (BuildOptions.baseLater), as a library caller gives it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { OciLayout } from '../layout/layout.js';
import { OciToolError } from '../util/errors.js';
import { buildImage, type BuildBase } from './build.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-build-base-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

it('a build refused before it reads the base leaves no unhandled rejection when the base then fails', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const destination = await OciLayout.init(join(dir, 'out'));
    // The base fails a moment after the build has refused (a registry's 404 arriving late).
    const baseLater = new Promise<BuildBase>((_, reject) => setTimeout(() => reject(new OciToolError('NOT_FOUND', 'base: manifest latest not found')), 20));
    await expect(buildImage({ destination, baseLater, ignoreFile: join(dir, 'no-such-ignore-file') })).rejects.toThrow(/^ignore file /);
    await new Promise((r) => setTimeout(r, 100));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
