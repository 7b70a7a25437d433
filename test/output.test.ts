import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonEvents, lastLine, ocitool } from './helpers/cli.js';
import { ok } from './helpers/tools.js';

/** What a script reads from `--json`: every stdout line one JSON object, the last one `done` or `error`. */
interface Event {
  event: string;
  command?: string;
  reference?: string;
  digest?: string;
  message?: string;
  code?: string;
  exitCode?: number;
  [k: string]: unknown;
}

let work: string;
let tree: string;
let layout: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-output-'));
  tree = join(work, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await writeFile(join(tree, 'etc', 'hello'), 'hello\n');
  layout = join(work, 'layout');
  await ok(ocitool(['build', '--tag', `oci:${layout}:v1`, '--add', tree, '--created', '0']));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Runs a command with --json: every line parses, the last is `done` for `command`; returns the events. */
async function jsonRun(args: string[], command: string): Promise<Event[]> {
  const r = await ocitool([...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const events = jsonEvents<Event>(r.stdout);
  expect(events.length).toBe(r.stdout.trimEnd().split('\n').length);
  expect(events.at(-1)).toMatchObject({ event: 'done', command });
  return events;
}

describe('--json: one scheme on every command', () => {
  it('build and tag end with a done event carrying the reference and the digest (not a bare digest)', async () => {
    const dst = join(work, 'json-build');
    const built = await jsonRun(['build', '--tag', `oci:${dst}:v1`, '--add', tree, '--created', '0'], 'build');
    const done = built.at(-1)!;
    expect(done).toMatchObject({ reference: `oci:${dst}:v1`, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: 1 });
    expect(done.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(built.filter((e) => e.event === 'layer')).toHaveLength(1);
    const tagged = (await jsonRun(['tag', `oci:${dst}:v1`, 'v2'], 'tag')).at(-1)!;
    expect(tagged).toMatchObject({ reference: `oci:${dst}:v2`, digest: done.digest, tag: 'v2' });
  });

  it('every other command: ls, inspect, verify, rm, gc, unpack, index, artifact, repack, init, copy', async () => {
    const dst = join(work, 'json-all');
    expect((await jsonRun(['init', dst], 'init')).at(-1)!.reference).toBe(`oci:${dst}`);
    const copied = (await jsonRun(['copy', `oci:${layout}:v1`, `oci:${dst}:v1`], 'copy')).at(-1)!;
    expect(copied).toMatchObject({ reference: `oci:${dst}:v1`, copied: 3, skipped: 0, mounted: 0 });
    const listed = await jsonRun(['ls', dst], 'ls');
    expect(listed.filter((e) => e.event === 'image').map((e) => [e.tag, e.digest])).toEqual([['v1', copied.digest]]);
    expect(listed.at(-1)!.count).toBe(1);
    const inspected = await jsonRun(['inspect', `${dst}:v1`], 'inspect');
    expect(inspected[0]).toMatchObject({ event: 'manifest', digest: copied.digest });
    expect((inspected[0]!.document as { schemaVersion: number }).schemaVersion).toBe(2);
    expect((await jsonRun(['inspect', '--config', `${dst}:v1`], 'inspect'))[0]!.event).toBe('config');
    expect((await jsonRun(['verify', dst], 'verify')).at(-1)).toMatchObject({ checked: 3, problems: 0 });
    const rootfs = join(work, 'json-rootfs');
    const unpacked = await jsonRun(['unpack', '--rootless', `${dst}:v1`, rootfs], 'unpack');
    expect(unpacked.filter((e) => e.event === 'layer')).toHaveLength(1);
    expect(unpacked.at(-1)).toMatchObject({ digest: copied.digest, layers: 1 });
    await writeFile(join(rootfs, 'etc', 'new'), 'new\n');
    const repacked = (await jsonRun(['repack', rootfs, '--tag', `oci:${dst}:v2`, '--created', '0'], 'repack')).at(-1)!;
    expect(repacked).toMatchObject({ reference: `oci:${dst}:v2`, added: 1 });
    expect((await jsonRun(['index', 'create', '--tag', `oci:${dst}:all`, `oci:${dst}:v1`], 'index create')).at(-1)!.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const note = join(work, 'note.txt');
    await writeFile(note, 'signed\n');
    const packed = await jsonRun(['artifact', 'pack', note, '--artifact-type', 'application/vnd.example', '--subject', `oci:${dst}:v1`], 'artifact pack');
    expect(packed.at(-1)!.subject).toBe(copied.digest);
    const refs = await jsonRun(['referrers', `oci:${dst}:v1`], 'referrers');
    expect(refs.filter((e) => e.event === 'referrer').map((e) => e.digest)).toEqual([packed.at(-1)!.digest]);
    const pulled = await jsonRun(['artifact', 'pull', `oci:${dst}@${packed.at(-1)!.digest}`, join(work, 'pulled')], 'artifact pull');
    expect(pulled.filter((e) => e.event === 'file').map((e) => e.title)).toEqual(['note.txt']);
    const removed = await jsonRun(['rm', `oci:${dst}:v2`], 'rm');
    expect(removed.at(-1)!.removed).toBe(1);
    const gced = await jsonRun(['gc', dst], 'gc');
    expect(gced.filter((e) => e.event === 'removed').length).toBe(gced.at(-1)!.removed);
    expect(gced.at(-1)!.removed).toBeGreaterThan(0);
  });

  it('a failed push prints the error object on stdout (message, code, exit code), and one line on stderr', async () => {
    const r = await ocitool(['push', '--json', '--timeout', '5', `oci:${layout}:v1`, 'docker://127.0.0.1:1/team/app:v1']);
    expect(r.code).toBe(1);
    const events = jsonEvents<Event>(r.stdout);
    expect(events.at(-1)).toMatchObject({ event: 'error', command: 'push', exitCode: 1 });
    expect(events.at(-1)!.message).toMatch(/127\.0\.0\.1:1/);
    expect(events.some((e) => e.event === 'done')).toBe(false);
    expect(r.stderr.trimEnd().split('\n')).toEqual([`ocitool: ${events.at(-1)!.message}`]);
  });

  it('a usage error with --json: the error object, exit 2', async () => {
    for (const args of [['ls', '--json', layout, '--no-such-flag'], ['--json', 'build', '--add', tree]]) {
      const r = await ocitool(args);
      expect(r.code).toBe(2);
      const events = jsonEvents<Event>(r.stdout);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ event: 'error', code: 'USAGE', exitCode: 2 });
    }
  });
});

describe('--digestfile', () => {
  it('build, copy, tag, index, artifact pack and repack write the digest they print', async () => {
    const dst = join(work, 'digestfile');
    const file = (n: string) => join(work, `digest-${n}`);
    const printed = async (args: string[], n: string): Promise<void> => {
      const digest = lastLine(await ok(ocitool([...args, '--digestfile', file(n)])));
      expect(await readFile(file(n), 'utf8')).toBe(digest);
    };
    await printed(['build', '--tag', `oci:${dst}:b`, '--add', tree], 'build');
    await printed(['copy', `oci:${layout}:v1`, `oci:${dst}:c`], 'copy');
    await printed(['tag', `oci:${dst}:c`, 't'], 'tag');
    await printed(['index', 'create', '--tag', `oci:${dst}:i`, `oci:${dst}:c`], 'index');
    const note = join(work, 'digestfile-note.txt');
    await writeFile(note, 'x\n');
    await printed(['artifact', 'pack', note, '--artifact-type', 'application/vnd.example', '--tag', `oci:${dst}:a`], 'artifact');
    const rootfs = join(work, 'digestfile-rootfs');
    await ok(ocitool(['unpack', '--rootless', `oci:${dst}:c`, rootfs]));
    await printed(['repack', rootfs, '--tag', `oci:${dst}:r`], 'repack');
  });

  it('never on failure: an existing digest file stays as it was, and none appears', async () => {
    const old = join(work, 'old-digest');
    await writeFile(old, 'old');
    const before = await stat(old);
    const r = await ocitool(['copy', '--digestfile', old, `oci:${layout}:missing`, `oci:${join(work, 'nowhere')}:v1`]);
    expect(r.code).toBe(1);
    expect(await readFile(old, 'utf8')).toBe('old');
    expect((await stat(old)).mtimeMs).toBe(before.mtimeMs);
    const fresh = join(work, 'fresh-digest-dir');
    await mkdir(fresh);
    const p = await ocitool(['push', '--timeout', '5', '--digestfile', join(fresh, 'd'), `oci:${layout}:v1`, 'docker://127.0.0.1:1/team/app:v1']);
    expect(p.code).toBe(1);
    expect(await readdir(fresh)).toEqual([]);
    // A folder that is not there: refused before any work (no tag), exit 2.
    const dst = join(work, 'digestfile-refused');
    const refused = await ocitool(['copy', '--digestfile', join(work, 'no-such-folder', 'd'), `oci:${layout}:v1`, `oci:${dst}:v1`]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trimEnd().split('\n')).toEqual([`ocitool: --digestfile ${join(work, 'no-such-folder', 'd')}: ${join(work, 'no-such-folder')} is not a folder`]);
    expect(await readdir(dst).catch(() => [])).toEqual([]);
  });
});

describe('a docker archive written by build or copy', () => {
  it('the digest printed is the one ls and inspect show for the archive', async () => {
    const archive = join(work, 'out.tar');
    const built = lastLine(await ok(ocitool(['build', '--tag', `docker-archive:${archive}:team/app:v1`, '--add', tree])));
    const listed = jsonEvents<Event>(await ok(ocitool(['ls', '--json', `docker-archive:${archive}`])), 'image');
    expect(listed.map((e) => e.digest)).toEqual([built]);
    const copiedTo = join(work, 'copied.tar');
    const copied = lastLine(await ok(ocitool(['copy', `oci:${layout}:v1`, `docker-archive:${copiedTo}`])));
    const inspected = jsonEvents<Event>(await ok(ocitool(['inspect', '--json', `docker-archive:${copiedTo}`])), 'manifest');
    expect(inspected.map((e) => e.digest)).toEqual([copied]);
  });
});
