import { spawnSync } from 'node:child_process';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../../test/helpers/tools.js';
import { withFileLock } from './lock.js';

let dir: string;
let remove: () => Promise<void>;
beforeAll(async () => {
  ({ path: dir, remove } = await tmpDir('lock'));
});
afterAll(() => remove());

const deadPid = (): number => spawnSync('true').pid!;
const owner = (pid: number, token: string): string => JSON.stringify({ pid, host: hostname(), time: Date.now(), token });
const ago = async (path: string, ms: number): Promise<void> => {
  const t = new Date(Date.now() - ms);
  await utimes(path, t, t);
};

describe('withFileLock', () => {
  it("release after a takeover leaves the new holder's lock in place", async () => {
    const path = join(dir, 'takeover.lock');
    await withFileLock(path, async () => {
      // While we (judged stale, say) still run, another process has broken our lock and taken it.
      await writeFile(path, owner(process.pid + 1, 'theirs'));
    });
    expect(JSON.parse(await readFile(path, 'utf8')).token).toBe('theirs');
  });

  it('breaks a dead holder\'s lock once, with many waiters, and never lets two holders in', async () => {
    const path = join(dir, 'stale.lock');
    await writeFile(path, owner(deadPid(), 'dead'));
    let inside = 0;
    let most = 0;
    let runs = 0;
    await Promise.all(
      Array.from({ length: 25 }, () =>
        withFileLock(path, async () => {
          most = Math.max(most, ++inside);
          await sleep(1);
          inside--;
          runs++;
        }, { timeoutMs: 20_000 }),
      ),
    );
    expect(runs).toBe(25);
    expect(most).toBe(1);
  });

  it('breaks a lock file whose owner was never written, once it is old, and a takeover marker left by a dead breaker', async () => {
    const path = join(dir, 'empty.lock');
    await writeFile(path, '');
    await ago(path, 60_000);
    await writeFile(`${path}.takeover`, owner(deadPid(), 'breaker'));
    await ago(`${path}.takeover`, 60_000);
    let ran = false;
    await withFileLock(path, async () => void (ran = true), { timeoutMs: 3000 });
    expect(ran).toBe(true);
  });

  it("never takes a live holder's lock: the waiter times out naming the holder", async () => {
    const path = join(dir, 'live.lock');
    let release!: () => void;
    const held = withFileLock(path, () => new Promise<void>((r) => (release = r)));
    await sleep(20);
    await expect(withFileLock(path, async () => undefined, { timeoutMs: 300 })).rejects.toThrow(new RegExp(`timed out waiting for the lock on .*held by pid ${process.pid}`));
    release();
    await held;
  });
});
