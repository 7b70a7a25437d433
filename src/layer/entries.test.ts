import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTree } from '../../test/helpers/trees.js';
import { EntryConverter, archivePath, clampTime } from './entries.js';
import { addEntries } from './sources.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocitool-entries-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(conv: EntryConverter, src = dir, dest = '/'): Promise<{ name: string; type: string; uid: number; gid: number; mtime: number }[]> {
  const out = [];
  for await (const e of addEntries(src, dest, conv)) out.push({ name: e.name, type: e.type, uid: e.uid, gid: e.gid, mtime: e.mtime });
  return out;
}

describe('EntryConverter', () => {
  it('sets every owner from --chown and clamps mtimes', async () => {
    await makeTree(dir, { 'a/b': 'x' }, { mtime: new Date('2030-01-01T00:00:00Z') });
    const got = await collect(new EntryConverter({ uid: 1000, gid: 2000, mtimeClamp: 1_600_000_000 }), dir, '/srv');
    expect(got).toEqual([
      { name: 'srv', type: 'dir', uid: 1000, gid: 2000, mtime: 1_600_000_000 },
      { name: 'srv/a', type: 'dir', uid: 1000, gid: 2000, mtime: 1_600_000_000 },
      { name: 'srv/a/b', type: 'file', uid: 1000, gid: 2000, mtime: 1_600_000_000 },
    ]);
    expect(clampTime(1_500_000_000_999, 1_600_000_000)).toBe(1_500_000_000); // older times are kept, in whole seconds
  });

  it('skips sockets always, and fifos unless allowed, with a warning', async () => {
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const sock = createServer();
    await new Promise<void>((resolve) => sock.listen(join(dir, 'sock'), resolve));
    try {
      const warnings: string[] = [];
      const strict = await collect(new EntryConverter({ allowSpecial: false, warn: (m) => warnings.push(m) }));
      expect(strict).toEqual([]);
      expect(warnings.join('\n')).toMatch(/skipping fifo .*pipe \(only root may pack devices and fifos\)\nskipping socket .*sock/);
      const root = await collect(new EntryConverter({ allowSpecial: true, warn: () => undefined }));
      expect(root.map((e) => [e.name, e.type])).toEqual([['pipe', 'fifo']]);
    } finally {
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    }
  });

  it('normalises archive paths so nothing climbs out', () => {
    expect(archivePath('/', 'a/b')).toBe('a/b');
    expect(archivePath('../../x', '../y')).toBe('y');
    expect(archivePath('/app/', '')).toBe('app');
  });
});
