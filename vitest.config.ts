import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Tests never touch the user's cache of blob locations; test/global-setup.ts removes this one at the end.
const cacheDir = join(tmpdir(), `ocitool-test-cache-${process.pid}`);
process.env.OCITOOL_TEST_CACHE_DIR = cacheDir;

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests that start registries and run skopeo/umoci are I/O bound; two workers suit 2 cores.
    maxWorkers: 2,
    benchmark: { include: ['bench/**/*.bench.ts'] },
    env: { OCITOOL_CACHE_DIR: cacheDir },
  },
});
