import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * End-to-end tests run bin/ocitool, which loads dist/bundle/: build and bundle once before the
 * suite. The teardown removes the suite's OCITOOL_CACHE_DIR (vitest.config.ts).
 */
export default function setup(): () => void {
  const teardown = (): void => {
    const dir = process.env.OCITOOL_TEST_CACHE_DIR;
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  if (process.env.OCITOOL_SKIP_BUILD === '1') return teardown;
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  return teardown;
}
