import { describe, expect, it } from 'vitest';
import type { TarHeader } from '../unpack/tar-reader.js';
import { OciToolError } from '../util/errors.js';
import { FlattenPlanner, type Action } from './flatten-plan.js';

const h = (name: string, type: TarHeader['type'] = 'file', more: Partial<TarHeader> = {}): TarHeader => ({
  name,
  type,
  mode: type === 'directory' ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: 0,
  linkname: '',
  devmajor: 0,
  devminor: 0,
  xattrs: new Map(),
  ...more,
});
const link = (name: string, target: string): TarHeader => h(name, 'link', { linkname: target });

/** Plans these layers; returns the actions by position. */
function plan(layers: TarHeader[][], limits?: { paths: number; bytes: number }): { actions: [number, Action][]; dirs: Map<string, TarHeader | undefined> } {
  const p = new FlattenPlanner(limits);
  for (const [i, layer] of layers.entries()) {
    p.startLayer(`layer ${i + 1} (sha256:test)`);
    for (const e of layer) p.add(e);
  }
  const r = p.plan();
  return { actions: [...r.actions].sort((a, b) => a[0] - b[0]), dirs: r.dirs };
}

describe('FlattenPlanner', () => {
  it('a hardlink whose target is replaced later keeps the old content: written at the old entry, under the link name', () => {
    // 0: f, 1: l -> f, 2: f again (new inode)
    const { actions } = plan([[h('f'), link('l', 'f')], [h('f')]]);
    expect(actions).toEqual([
      [0, { kind: 'content', name: 'l' }],
      [2, { kind: 'content', name: 'f' }],
    ]);
  });

  it('links to a removed target: the first surviving link carries the content, the others link to it', () => {
    // 0: f, 1: a -> f, 2: b -> a, 3: .wh.f
    const { actions } = plan([[h('f'), link('a', 'f'), link('b', 'a')], [h('.wh.f')]]);
    expect(actions).toEqual([
      [0, { kind: 'content', name: 'a' }],
      [2, { kind: 'link', name: 'b', target: 'a' }],
    ]);
  });

  it('a link whose target survives stays a link; a link to itself changes nothing', () => {
    const { actions } = plan([[h('f'), link('l', 'f'), link('l', 'l')]]);
    expect(actions).toEqual([
      [0, { kind: 'content', name: 'f' }],
      [1, { kind: 'link', name: 'l', target: 'f' }],
    ]);
  });

  it('a directory in several layers is written once, at its first entry, with the last metadata', () => {
    const { actions, dirs } = plan([[h('d/', 'directory', { mode: 0o700 })], [h('d/', 'directory', { mode: 0o750 })], [h('./d', 'directory', { mode: 0o711 })]]);
    expect(actions).toEqual([[0, { kind: 'dir', name: 'd' }]]);
    expect(dirs.get('d')?.mode).toBe(0o711);
  });

  it('a directory removed and made again is written at its new first entry; parents-only directories have no header', () => {
    const { actions, dirs } = plan([[h('d/', 'directory'), h('d/x')], [h('.wh.d'), h('d/y'), h('d/', 'directory', { mode: 0o700 })]]);
    expect(actions).toEqual([
      [3, { kind: 'content', name: 'd/y' }],
      [4, { kind: 'dir', name: 'd' }],
    ]);
    expect(dirs.get('d')?.mode).toBe(0o700);
    expect(plan([[h('p/q/r')]]).dirs).toEqual(
      new Map([
        ['p', undefined],
        ['p/q', undefined],
      ]),
    );
  });

  it('entries under a symlinked parent land where it points', () => {
    const { actions } = plan([[h('usr/lib/', 'directory'), h('lib', 'symlink', { linkname: '/usr/lib' })], [h('lib/x')]]);
    expect(actions.at(-1)).toEqual([2, { kind: 'content', name: 'usr/lib/x' }]);
  });

  it('the number of paths and the bytes of their names are bounded: one line naming the layer', () => {
    const many = Array.from({ length: 5 }, (_, i) => h(`f${i}`));
    const err = (() => {
      try {
        plan([[h('a')], many], { paths: 4, bytes: 1 << 20 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(OciToolError);
    expect((err as OciToolError).message).toBe('layer 2 (sha256:test): the flattened filesystem would hold more than 4 paths');
    expect(() => plan([[h('x'.repeat(100))]], { paths: 10, bytes: 50 })).toThrow("layer 1 (sha256:test): the flattened filesystem's names would take more than 50 bytes");
    // Removed paths give their room back.
    expect(() => plan([[h('a'), h('b')], [h('.wh.a'), h('.wh.b'), h('c'), h('d')]], { paths: 2, bytes: 100 })).not.toThrow();
  });
});
