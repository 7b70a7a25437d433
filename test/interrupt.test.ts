/**
 * Ctrl-C in the middle of a copy, and a copy that fails half-way (issue 13): real ocitool processes,
 * the signal sent to their process group as a terminal does. Each interrupted copy exits 130 within a
 * second, says "interrupted" once as its last line, tags nothing, and leaves no temp file in the layout
 * or in $TMPDIR (a folder of the test's own).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, lastLine, ocitool } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { ok } from './helpers/tools.js';
import { GRACE_MS } from '../src/cli/interrupt.js';
import { OciArchiveSource } from '../src/archive/source.js';
import { OciArchiveWriter } from '../src/archive/writer.js';
import { OciLayout } from '../src/layout/layout.js';
import type { Descriptor } from '../src/spec/types.js';
import { OciToolError } from '../src/util/errors.js';

let work: string;
let src: string;
let layerDigest: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocitool-interrupt-'));
  // 64 MiB of random bytes as base64 text (86 MB): gzip takes seconds over it, and a slow upload longer.
  await mkdir(join(work, 'tree'));
  await writeFile(join(work, 'tree', 'data.txt'), randomBytes(64 << 20).toString('base64'));
  src = join(work, 'src');
  await ok(ocitool(['build', '-q', '--compression', 'none', '--tag', `oci:${src}:v1`, '--add', join(work, 'tree')]));
  const index = JSON.parse(await readFile(join(src, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(src, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  layerDigest = manifest.layers[0]!.digest;
}, 60_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Every regular file under `dirs` (missing ones are empty) with its size. */
async function filesUnder(...dirs: string[]): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  for (const dir of dirs) {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isFile()) continue;
      const path = join(e.parentPath, e.name);
      const s = await lstat(path).catch(() => undefined);
      if (s) out.push({ path, size: s.size });
    }
  }
  return out;
}

/** What is in a folder (nothing when it is missing). */
const entriesOf = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [])).sort();

interface Interrupted {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** From the (first) signal to the exit. */
  ms: number;
}

/**
 * Runs ocitool in its own process group with TMPDIR=`tmp`, waits until `ready()` says the copy is in
 * the middle (at most 30 s), sends SIGINT to the group (`times` times, `gapMs` apart) and waits for the exit.
 */
async function interrupt(args: string[], tmp: string, ready: (stderr: string) => Promise<boolean>, times = 1, gapMs = 20, program = [BIN], sig: NodeJS.Signals = 'SIGINT'): Promise<Interrupted> {
  const child = spawn(process.execPath, [...program, ...args], { cwd: ROOT, detached: true, env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  try {
    const deadline = Date.now() + 30_000;
    while (!(await ready(stderr))) {
      if (done) throw new Error(`ocitool ended before it was interrupted:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`the copy never got to the middle:\n${stderr}`);
      await sleep(20);
    }
    const t0 = Date.now();
    for (let i = 0; i < times; i++) {
      if (i > 0) await sleep(gapMs);
      process.kill(-child.pid!, sig);
    }
    const end = await Promise.race([exited, sleep(10_000).then(() => undefined)]);
    if (!end) throw new Error(`ocitool still runs 10 s after SIGINT:\n${stderr}`);
    // The streams may deliver their last bytes just after the exit event.
    await new Promise((r) => (child.stderr.readableEnded ? r(undefined) : child.stderr.once('end', r)));
    return { ...end, stderr, ms: Date.now() - t0 };
  } finally {
    if (!done) process.kill(-child.pid!, 'SIGKILL');
  }
}

/** A file of at least `min` bytes is being written under one of `dirs`. */
const writing = (min: number, ...dirs: string[]) => async (): Promise<boolean> => (await filesUnder(...dirs)).some((f) => f.size >= min);

function expectInterrupted(r: Interrupted, verb = 'copy'): void {
  if (r.code !== 130) throw new Error(`exit ${r.code} (signal ${r.signal}):\n${r.stderr}`);
  expect(r.ms).toBeLessThan(1000);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines.at(-1)).toBe(`ocitool: ${verb}: interrupted`);
  expect(lines.filter((l) => l.includes('interrupted'))).toHaveLength(1);
  expect(r.stderr).not.toMatch(/ at |abort/i); // no stack, no raw AbortError text
}

async function freshTmp(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  return dir;
}

const tagsOf = async (layout: string): Promise<string[]> => {
  const raw = await readFile(join(layout, 'index.json'), 'utf8').catch(() => '{"manifests":[]}');
  return (JSON.parse(raw) as { manifests: { annotations?: Record<string, string> }[] }).manifests.flatMap((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? []);
};

describe('Ctrl-C in the middle of a copy', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('a recompressing layout to layout copy, %s: exit 130 within a second, no tag, no temp file left', async (sig) => {
    const tmp = await freshTmp(`tmp-layout-${sig}`);
    const dst = join(work, `dst-layout-${sig}`);
    const r = await interrupt(['copy', '--compression', 'gzip', `oci:${src}:v1`, `oci:${dst}:v1`], tmp, writing(4 << 20, join(dst, '.ocitool', 'tmp'), tmp), 1, 0, [BIN], sig);
    expectInterrupted(r);
    expect(await tagsOf(dst)).toEqual([]);
    expect(await entriesOf(join(dst, '.ocitool', 'tmp'))).toEqual([]);
    expect(await entriesOf(tmp)).toEqual([]);
    // What was stored is whole: the layout verifies.
    await ok(ocitool(['verify', dst]));
  }, 60_000);

  it.each(['oci-archive', 'docker-archive'])('while writing %s: exit 130, no archive, no temp file beside it or in TMPDIR', async (transport) => {
    const tmp = await freshTmp(`tmp-${transport}`);
    const out = join(work, `out-${transport}`);
    await mkdir(out);
    const r = await interrupt(['copy', '--compression', 'gzip', `oci:${src}:v1`, `${transport}:${join(out, 'image.tar')}`], tmp, writing(4 << 20, tmp, out));
    expectInterrupted(r);
    expect(await entriesOf(out)).toEqual([]);
    expect(await entriesOf(tmp)).toEqual([]);
  }, 60_000);

  describe('a push to a registry behind a slow proxy', () => {
    let reg: TestRegistry;
    let proxy: FaultProxy;
    let uploading = 0;
    beforeAll(async () => {
      reg = await startRegistry();
      proxy = await startFaultProxy(reg.host, (_n, method, path) => {
        const upload = (method === 'PATCH' || method === 'PUT') && path.includes('/blobs/uploads/');
        if (upload && uploading === 0) uploading = Date.now();
        return upload ? 'slow-request' : 'none';
      });
    }, 30_000);
    afterAll(async () => {
      await proxy?.stop();
      await reg?.stop();
    });
    /** Half a second into the first upload. */
    const midUpload = async (): Promise<boolean> => uploading > 0 && Date.now() - uploading > 500;
    const noTag = async (repo: string): Promise<void> => {
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status).toBe(404);
    };

    it('Ctrl-C mid-upload: exit 130 within a second, one line, no tag in the registry', async () => {
      uploading = 0;
      const tmp = await freshTmp('tmp-push');
      const r = await interrupt(['push', `oci:${src}:v1`, `docker://${proxy.host}/lib/big:v1`], tmp, midUpload);
      expectInterrupted(r, 'push');
      await noTag('lib/big');
      expect(await entriesOf(tmp)).toEqual([]);
    }, 60_000);

    it('Ctrl-C typed at a terminal mid-upload: the bars erased, then one line; exit 130', async () => {
      uploading = 0;
      const tmp = await freshTmp('tmp-push-pty');
      const after = await ctrlCOnPty(['push', `oci:${src}:v1`, `docker://${proxy.host}/lib/pty:v1`], tmp, async (screen) => (await midUpload()) && /\] [0-9.]+ (B|KiB|MiB)\/\d+ MiB/.test(screen));
      expect(after).toMatch(/^\^C(\r\x1b\[\d+A\x1b\[J[^\x1b]*\r\n)*\r\x1b\[\d+A\x1b\[J\r\x1b\[Kocitool: push: interrupted\r\nrc=130\r\n$/);
      await noTag('lib/pty');
      expect(await entriesOf(tmp)).toEqual([]);
    }, 60_000);

  });
});

/**
 * Runs `args` on a pty (script(1); a ^C written to it goes through the line discipline as typed),
 * types ^C once `ready()` says the command is in the middle, and returns the screen from the ^C on,
 * followed by `rc=N`, the command's exit status as script(1) returns it (-e).
 *
 * The command is exec'd by the shell script(1) starts, so no shell waits on it: a ^C reaches the
 * whole foreground group, and a shell such as dash (what SHELL is on many CI machines) dies of it
 * at once, with the command's last lines and status lost.
 */
async function ctrlCOnPty(args: string[], tmp: string, ready: (screen: string) => Promise<boolean>): Promise<string> {
  const command = `exec ${process.execPath} ${BIN} ${args.map((a) => `'${a}'`).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: ROOT, env: { ...process.env, SHELL: '/bin/sh', TMPDIR: tmp, COLUMNS: '100' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (c: Buffer) => (screen += c.toString()));
  // 'close', not 'exit': the last lines may still be in the pipe when script exits.
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let code: number | null | 'timeout' = null;
  try {
    const deadline = Date.now() + 30_000;
    let done = false;
    void closed.then(() => (done = true));
    while (!(await ready(screen))) {
      if (Date.now() > deadline || done) throw new Error(`never got to the middle:\n${screen}`);
      await sleep(20);
    }
    child.stdin.write('\x03');
    code = await Promise.race([closed, sleep(10_000).then(() => 'timeout' as const)]);
  } finally {
    child.kill('SIGKILL');
  }
  return `${screen.slice(screen.lastIndexOf('^C'))}rc=${code}\r\n`;
}

describe('Ctrl-C typed at a terminal', () => {
  it('the bars and the echoed ^C are erased, then one line; exit 130', async () => {
    const tmp = await freshTmp('tmp-pty');
    const dst = join(work, 'dst-pty');
    // A bar for the layer being recompressed.
    const after = await ctrlCOnPty(['copy', '--compression', 'gzip', `oci:${src}:v1`, `oci:${dst}:v1`], tmp, async (screen) => /\] [0-9.]+ (B|KiB|MiB)\/\d+ MiB/.test(screen) && (await writing(4 << 20, join(dst, '.ocitool', 'tmp'))()));
    // A redraw may come between the echo and the signal: it too starts by erasing from the line's start.
    expect(after).toMatch(/^\^C(\r\x1b\[\d+A\x1b\[J[^\x1b]*\r\n)*\r\x1b\[\d+A\x1b\[J\r\x1b\[Kocitool: copy: interrupted\r\nrc=130\r\n$/);
    expect(await tagsOf(dst)).toEqual([]);
    expect(await entriesOf(tmp)).toEqual([]);
  }, 60_000);

  it('every command that works a while: the ^C erased, then one line on a clean line; exit 130', async () => {
    const tmp = await freshTmp('tmp-pty-all');
    const tree = join(work, 'tree');
    const out = (n: string) => join(work, `pty-${n}`);
    const cases: [string, string[], () => Promise<boolean>][] = [
      ['build', ['build', '--tag', `oci:${out('build')}:v1`, '--add', tree], writing(4 << 20, join(out('build'), '.ocitool', 'tmp'))],
      ['build', ['build', '--tag', `docker-archive:${out('build.tar')}`, '--add', tree], writing(4 << 20, tmp)],
      ['artifact pack', ['artifact', 'pack', join(tree, 'data.txt'), '--artifact-type', 'application/vnd.example', '--tag', `oci:${out('pack')}:v1`], writing(4 << 20, join(out('pack'), '.ocitool', 'tmp'))],
      ['unpack', ['unpack', '--rootless', `oci:${src}:v1`, out('rootfs')], writing(4 << 20, out('rootfs'))],
    ];
    for (const [verb, args, ready] of cases) {
      const after = await ctrlCOnPty(args, tmp, ready);
      // Whatever was drawn is erased (bars: cursor up and clear), then the line from its start.
      expect(after, verb).toMatch(new RegExp(`^\\^C(\\r\\x1b\\[\\d+A\\x1b\\[J[^\\x1b]*\\r\\n)*(\\r\\x1b\\[\\d+A\\x1b\\[J|\\r\\x1b\\[K)?\\r\\x1b\\[Kocitool: ${verb}: interrupted\\r\\nrc=130\\r\\n$`));
    }
    expect(await tagsOf(out('build'))).toEqual([]);
    expect(await tagsOf(out('pack'))).toEqual([]);
    expect(await entriesOf(tmp)).toEqual([]);
  }, 120_000);
});

describe('a command that does not wind down', () => {
  /**
   * A stand-in command (the CLI's own interrupt module, built) that holds a temp file and ignores its
   * signal: what the second Ctrl-C and the grace period are there for.
   */
  async function stubborn(name: string): Promise<{ script: string; tmp: string }> {
    const tmp = await freshTmp(`tmp-${name}`);
    const held = join(tmp, 'held-temp');
    const script = join(work, `${name}.mjs`);
    await writeFile(
      script,
      `import { writeFileSync } from 'node:fs';
import { catchInterrupts } from ${JSON.stringify(join(ROOT, 'dist', 'cli', 'interrupt.js'))};
import { holdTemp } from ${JSON.stringify(join(ROOT, 'dist', 'util', 'fs.js'))};
const i = catchInterrupts();
i.name = 'stubborn';
writeFileSync(${JSON.stringify(held)}, 'x');
holdTemp(${JSON.stringify(held)});
i.signal.addEventListener('abort', () => process.stderr.write('aborted\\n'));
process.stderr.write('ready\\n');
setInterval(() => undefined, 1000);
`,
    );
    return { script, tmp };
  }

  const run = (script: string, tmp: string, signals: number, gapMs: number) =>
    interrupt([], tmp, async (stderr) => stderr.includes('ready'), signals, gapMs, [script]);

  it('a second Ctrl-C ends it at once (130), its held temp files removed, one line', async () => {
    const { script, tmp } = await stubborn('twice');
    const r = await run(script, tmp, 2, 100);
    expect(r.code).toBe(130);
    expect(r.ms).toBeLessThan(GRACE_MS - 200); // the first signal alone would take GRACE_MS
    expect(r.stderr).toBe('ready\naborted\nocitool: stubborn: interrupted\n');
    expect(await entriesOf(tmp)).toEqual([]);
  }, 30_000);

  it('one Ctrl-C that the command ignores: the process still ends (130) after the grace period, temp files removed', async () => {
    const { script, tmp } = await stubborn('grace');
    const r = await run(script, tmp, 1, 0);
    expect(r.code).toBe(130);
    expect(r.ms).toBeGreaterThanOrEqual(GRACE_MS - 50);
    expect(r.ms).toBeLessThan(2000);
    expect(lastLine(r.stderr)).toBe('ocitool: stubborn: interrupted');
    expect(await entriesOf(tmp)).toEqual([]);
  }, 30_000);
});

describe('a copy that fails half-way leaves nothing behind', () => {
  it('a corrupted layer copied to oci-archive: one line naming the blob, exit 1, no archive, nothing in TMPDIR', async () => {
    const bad = join(work, 'bad');
    await cp(src, bad, { recursive: true });
    const blob = join(bad, 'blobs', 'sha256', layerDigest.slice(7));
    const fh = await open(blob, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 40 << 20);
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, 40 << 20);
    } finally {
      await fh.close();
    }
    const tmp = await freshTmp('tmp-bad');
    const out = join(work, 'out-bad');
    await mkdir(out);
    for (const extra of [[], ['--compression', 'gzip']]) {
      const r = await ocitool(['copy', ...extra, `oci:${bad}:v1`, `oci-archive:${join(out, 'image.tar')}`], { env: { TMPDIR: tmp } });
      expect(r.code).toBe(1);
      const errors = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('ocitool:'));
      expect(errors).toHaveLength(1);
      expect(lastLine(r.stderr)).toBe(errors[0]);
      expect(errors[0]).toContain(layerDigest);
      expect(errors[0]).not.toMatch(/ENOTEMPTY|rmdir/);
      expect(await entriesOf(out)).toEqual([]);
      expect(await entriesOf(tmp)).toEqual([]);
    }
  }, 60_000);
});

describe('stores honour the signal (library)', () => {
  /** A stream that gives one 64 KiB chunk every 10 ms, forever (until destroyed). */
  const endless = (): Readable => {
    let n = 0;
    return new Readable({
      read() {
        setTimeout(() => this.push(Buffer.alloc(64 << 10, n++ & 0xff)), 10);
      },
    });
  };
  const interruption = (): OciToolError => new OciToolError('INTERRUPTED', 'test: interrupted');

  it('repack: aborted while its layer is written, the reason is thrown, nothing tagged, no temp file', async () => {
    const { unpack } = await import('../src/unpack/image.js');
    const { repack } = await import('../src/unpack/repack.js');
    const rootfs = join(work, 'repack-rootfs');
    await unpack({ transport: 'oci', dir: src, tag: 'v1' }, rootfs, { rootless: true });
    await writeFile(join(rootfs, 'more.txt'), randomBytes(16 << 20).toString('base64'));
    const dst = join(work, 'repack-dst');
    const abort = new AbortController();
    const reason = interruption();
    setTimeout(() => abort.abort(reason), 200);
    const t0 = Date.now();
    await expect(repack(rootfs, { transport: 'oci', dir: dst, tag: 'v2' }, { signal: abort.signal, compression: 'gzip' })).rejects.toBe(reason);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await tagsOf(dst)).toEqual([]);
    expect(await filesUnder(join(dst, '.ocitool', 'tmp'))).toEqual([]);
  }, 60_000);

  it('layout push and pushStream: aborted mid-stream, the reason is thrown, the source destroyed, no temp file, nothing stored', async () => {
    const layout = await OciLayout.init(join(work, 'lib-layout'));
    for (const put of [(c: Readable, signal: AbortSignal) => layout.push({ mediaType: 'application/octet-stream', digest: `sha256:${'1'.repeat(64)}`, size: 1 << 30 }, c, { signal }), (c: Readable, signal: AbortSignal) => layout.pushStream(c, { signal })]) {
      const content = endless();
      const abort = new AbortController();
      const p = put(content, abort.signal);
      await sleep(100);
      expect((await filesUnder(layout.tmpDir)).length).toBe(1); // in the middle
      const reason = interruption();
      abort.abort(reason);
      await expect(p).rejects.toBe(reason);
      expect(content.destroyed).toBe(true);
      expect(await entriesOf(layout.tmpDir)).toEqual([]);
      expect(await entriesOf(join(layout.dir, 'blobs', 'sha256'))).toEqual([]);
    }
  });

  it('layout and archive fetch: the stream fails with the reason and closes its file', async () => {
    const layout = await OciLayout.open(src);
    const index = JSON.parse(await readFile(join(src, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await readFile(layout.blobPath(index.manifests[0]!.digest), 'utf8')) as { layers: Descriptor[] };
    const abort = new AbortController();
    const stream = await layout.fetch(manifest.layers[0]!, { signal: abort.signal });
    const reason = interruption();
    setTimeout(() => abort.abort(reason), 5);
    await expect((async () => {
      for await (const _ of stream) await sleep(1);
    })()).rejects.toBe(reason);
    expect(stream.destroyed).toBe(true);
    await expect(layout.fetch(manifest.layers[0]!, { signal: abort.signal })).rejects.toBe(reason);

    const file = join(work, 'lib-src.tar');
    await ok(ocitool(['copy', `oci:${src}:v1`, `oci-archive:${file}`]));
    const archive = await OciArchiveSource.open(file);
    const again = new AbortController();
    const member = await archive.fetch(manifest.layers[0]!, { signal: again.signal });
    setTimeout(() => again.abort(reason), 5);
    await expect((async () => {
      for await (const _ of member) await sleep(1);
    })()).rejects.toBe(reason);
    expect(member.destroyed).toBe(true);
  }, 30_000);

  it('an oci-archive writer dropped after a failure: abort() never throws, and its temp layout is gone', async () => {
    const tmp = await freshTmp('tmp-lib-archive');
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const w = await OciArchiveWriter.create(join(work, 'lib.tar'));
      await w.layout.putBytes('x'.repeat(1000), 'application/octet-stream');
      // A writer still at work in the temp layout while it is dropped: abort() retries, never throws.
      const content = endless();
      const late = w.layout.pushStream(content);
      late.catch(() => undefined);
      await sleep(50);
      await expect(w.abort()).resolves.toBeUndefined();
      content.destroy();
      await late.catch(() => undefined);
      await w.abort();
      expect(await entriesOf(tmp)).toEqual([]);
    } finally {
      if (before === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = before;
    }
  });
});
