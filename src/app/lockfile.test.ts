import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OciToolError } from '../util/errors.js';
import { installedPackages, productionPackages, readCapped, readCappedSync, readLockfile } from './lockfile.js';

const lock = (packages: Record<string, unknown>) => ({ lockfileVersion: 3, packages: { '': { name: 'app' }, ...packages } });

describe('productionPackages', () => {
  it('keeps production, optional and devOptional entries, nested and scoped; drops dev ones', () => {
    const got = productionPackages(
      lock({
        'node_modules/a': { version: '1.0.0' },
        'node_modules/a/node_modules/b': { version: '2.0.0' },
        'node_modules/@s/p': { version: '3.0.0', license: 'MIT' },
        'node_modules/d': { version: '1.0.0', dev: true },
        'node_modules/o': { version: '1.0.0', optional: true },
        'node_modules/x': { version: '1.0.0', devOptional: true },
        'node_modules/d/node_modules/e': { dev: true, optional: true },
      }),
      'L',
    );
    expect(got.map((p) => [p.path, p.name, p.optional])).toEqual([
      ['node_modules/a', 'a', false],
      ['node_modules/a/node_modules/b', 'b', false],
      ['node_modules/@s/p', '@s/p', false],
      ['node_modules/o', 'o', true],
      ['node_modules/x', 'x', true],
    ]);
  });

  it.each(['node_modules/../../etc', '/etc/passwd', 'node_modules/a/../../../x', 'node_modules\\..\\x', 'C:/x', '../outside'])('refuses the entry %j, naming the lockfile and the entry', (key) => {
    expect(() => productionPackages(lock({ [key]: { version: '1' } }), 'LOCK')).toThrow(`lockfile LOCK: entry ${JSON.stringify(key)}`);
  });

  it('refuses links, a v1 lockfile, and too many entries', () => {
    expect(() => productionPackages(lock({ 'node_modules/w': { link: true, resolved: 'packages/w' } }), 'L')).toThrow(/"node_modules\/w" is a link to "packages\/w"/);
    expect(() => productionPackages({ lockfileVersion: 1, dependencies: {} }, 'L')).toThrow(/lockfileVersion 1 has no "packages" map/);
    const many: Record<string, unknown> = {};
    for (let i = 0; i <= 200_000; i++) many[`node_modules/p${i}`] = {};
    expect(() => productionPackages(lock(many), 'L')).toThrow(/more than 200000/);
  });
});

describe('readLockfile and installedPackages', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocitool-lock-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('names a missing lockfile, and a production package that is not installed (a missing optional one is skipped)', async () => {
    await expect(readLockfile(dir)).rejects.toThrow(`--app ${dir}: no package-lock.json or npm-shrinkwrap.json`);
    await writeFile(join(dir, 'package-lock.json'), JSON.stringify(lock({ 'node_modules/a': { version: '1.0.0' }, 'node_modules/o': { optional: true }, 'node_modules/b': { version: '2.0.0' } })));
    await mkdir(join(dir, 'node_modules/a'), { recursive: true });
    const l = await readLockfile(dir);
    await expect(installedPackages(dir, l)).rejects.toThrow(`--app ${dir}: b@2.0.0 (node_modules/b, in ${join(dir, 'package-lock.json')}) is not installed; run npm ci`);
    await mkdir(join(dir, 'node_modules/b'));
    expect((await installedPackages(dir, l)).map((p) => p.name)).toEqual(['a', 'b']);
  });

  it("keeps the app's own dependency names (its \"\" entry) for the SBOM", async () => {
    const sub = await mkdtemp(join(dir, 'root-'));
    await writeFile(join(sub, 'package-lock.json'), JSON.stringify({ lockfileVersion: 3, packages: { '': { name: 'app', dependencies: { z: '1', a: '1' }, devDependencies: { d: '1' }, optionalDependencies: { o: '1' } } } }));
    expect((await readLockfile(sub)).rootDependencies).toEqual(['a', 'o', 'z']);
  });

  it('reads under a cap: a larger file is refused, named, without being read whole', async () => {
    const big = join(dir, 'big.json');
    await writeFile(big, Buffer.alloc(3 << 20, 0x20));
    await expect(readCapped(big, 1 << 20, 'lockfile')).rejects.toThrow(`lockfile ${big}: larger than 1048576 bytes`);
    expect((await readCapped(big, 3 << 20, 'lockfile')).length).toBe(3 << 20);
    await rm(big);
  });

  it('refuses a lockfile that is a FIFO or a device, at once, instead of waiting on it or reading it without end', async () => {
    const app = join(dir, 'fifo-app');
    await mkdir(app);
    execFileSync('mkfifo', [join(app, 'package-lock.json')]);
    const started = Date.now();
    await expect(readLockfile(app)).rejects.toThrow(`lockfile ${join(app, 'package-lock.json')}: not a regular file`);
    await rm(join(app, 'package-lock.json'));
    await symlink('/dev/zero', join(app, 'package-lock.json'));
    await expect(readLockfile(app)).rejects.toThrow(`lockfile ${join(app, 'package-lock.json')}: not a regular file`);
    expect(Date.now() - started).toBeLessThan(2_000);
    await rm(app, { recursive: true });
  });

  it('prefers npm-shrinkwrap.json, and refuses one that is not JSON', async () => {
    await writeFile(join(dir, 'npm-shrinkwrap.json'), '{oops');
    await expect(readLockfile(dir)).rejects.toThrow(`lockfile ${join(dir, 'npm-shrinkwrap.json')}: not JSON`);
    await rm(join(dir, 'npm-shrinkwrap.json'));
  });
});

describe('productionPackages: what the SBOM reads', () => {
  it('keeps dependency names, and refuses hostile names, versions and dependency maps in one short line', () => {
    expect(productionPackages(lock({ 'node_modules/a': { version: '1', dependencies: { c: '1', b: '2' }, optionalDependencies: { d: '1' } } }), 'L')[0]!.dependencies).toEqual(['b', 'c', 'd']);
    const huge = 'n'.repeat(1_000_000);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ [`node_modules/${huge}`]: { version: '1' } }, /entry "node_modules\/n+…" is a path of 1000013 characters/],
      [{ 'node_modules/a': { name: huge } }, /the package name "n+…" is not an npm name/],
      [{ 'node_modules/a': { name: 'a b' } }, /the package name "a b" is not an npm name/],
      [{ 'node_modules/a': { version: `1\n${huge}` } }, /the version "1\\nn+…" is not a version/],
      [{ 'node_modules/a': { dependencies: ['b'] } }, /entry "node_modules\/a": "dependencies" is not an object/],
      [{ 'node_modules/a': { dependencies: { [huge]: '1' } } }, /"dependencies" names a package "n+…" of 1000000 characters/],
      [{ [`node_modules/a${'/node_modules/a'.repeat(70)}`]: {} }, /nests node_modules more than 64 deep/],
      [{ 'node_modules/a': { cpu: Array.from({ length: 100_000 }, (_, i) => `!c${i}`) } }, /"cpu" lists 100000 names \(at most 32\)/],
      [{ 'node_modules/a': { os: huge } }, /"os" holds a name "n+…" of 1000000 characters \(at most 32\)/],
    ];
    for (const [entries, re] of cases) {
      let err: Error | undefined;
      try {
        productionPackages(lock(entries), 'L');
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).toMatch(re);
      expect(err!.message.length).toBeLessThan(400);
      expect(err!.message).not.toContain('\n');
    }
  });
});

describe('readCapped and readCappedSync', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocitool-capped-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  /** Both readers, each giving the bytes or the OciToolError's code and message. */
  const readers = {
    sync: async (f: string, max: number, noFollow?: boolean) => readCappedSync(f, max, 'package.json', noFollow ? { noFollow } : {}),
    async: async (f: string, max: number) => readCapped(f, max, 'package.json'),
  };
  const outcome = async (read: Promise<Buffer>): Promise<Buffer | string> =>
    read.catch((err: unknown) => {
      if (err instanceof OciToolError) return `${err.code}: ${err.message}`;
      throw err;
    });

  it.each(Object.keys(readers) as (keyof typeof readers)[])('%s: a file at the cap is read whole, one byte over is TOO_LARGE, an empty one is an empty buffer', async (kind) => {
    const read = readers[kind];
    const f = join(dir, `cap-${kind}`);
    const data = Buffer.from('x'.repeat(999) + '\n');
    await writeFile(f, data);
    expect(await outcome(read(f, 1000))).toEqual(data);
    expect(await outcome(read(f, 999))).toBe(`TOO_LARGE: package.json ${f}: larger than 999 bytes`);
    expect(await outcome(read(f, 0))).toBe(`TOO_LARGE: package.json ${f}: larger than 0 bytes`);
    await writeFile(f, '');
    const empty = await outcome(read(f, 1000));
    expect(empty).toEqual(Buffer.alloc(0));
    expect(await outcome(read(join(dir, 'nope'), 10))).toBe(`NOT_FOUND: package.json ${join(dir, 'nope')}: no such file`);
  });

  it.each(Object.keys(readers) as (keyof typeof readers)[])('%s: a file whose fstat size is 0 but which has content (procfs) is read on, to the cap', async (kind) => {
    const read = readers[kind];
    const got = await outcome(read('/proc/self/status', 1 << 20));
    expect(Buffer.isBuffer(got) && got.toString().startsWith('Name:') && got.length > 100).toBe(true);
    expect(await outcome(read('/proc/self/status', 20))).toBe('TOO_LARGE: package.json /proc/self/status: larger than 20 bytes');
  });

  it.each(Object.keys(readers) as (keyof typeof readers)[])('%s: a FIFO is refused at once, not waited on (a writer that comes 1.5 s later does not matter)', async (kind) => {
    const read = readers[kind];
    const fifo = join(dir, `fifo-${kind}`);
    execFileSync('mkfifo', [fifo]);
    // Opens the FIFO (read-write, which never blocks) after 1.5 s: a reader blocked in open() is
    // let go then, so a regression shows as time, not as a hung worker.
    const late = spawn('sh', ['-c', 'sleep 1.5; exec 3<>"$0"; sleep 0.5', fifo], { stdio: 'ignore' });
    try {
      const started = Date.now();
      expect(await outcome(read(fifo, 1000))).toBe(`UNSUPPORTED: package.json ${fifo}: not a regular file`);
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      late.kill();
    }
  });

  it('sync: a symbolic link is refused with noFollow (named as one) and followed without it', async () => {
    const target = join(dir, 'real.json');
    const link = join(dir, 'link.json');
    await writeFile(target, '{"license":"MIT"}');
    await symlink(target, link);
    expect(await outcome(readers.sync(link, 100, true))).toBe(`UNSUPPORTED: package.json ${link}: a symbolic link, not a regular file`);
    expect((await outcome(readers.sync(link, 100))).toString()).toBe('{"license":"MIT"}');
    expect((await outcome(readers.sync(target, 100, true))).toString()).toBe('{"license":"MIT"}');
  });
});
