/**
 * The image's filesystem as one tar stream: pass 1 (FlattenPlanner) reads every layer's headers,
 * skipping the data; pass 2 reads the layers again, in order, and writes what survives from each
 * (data streamed straight through), so the output is layer by layer and holds no whiteouts. Small
 * pieces are gathered into ~1 MiB chunks.
 */
import type { Fetcher } from '../content/store.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type TarHeader as OutHeader, type TarTypeflag } from '../layer/tar-header.js';
import type { Descriptor } from '../spec/types.js';
import type { TarHeader } from '../unpack/tar-reader.js';
import { OciToolError } from '../util/errors.js';
import { FlattenPlanner, type FlattenLimits, type FlattenPlan } from './flatten-plan.js';
import { layerItems, layerName } from './flatten-read.js';

export interface FlattenSource {
  store: Fetcher;
  layers: Descriptor[];
  diffIds: string[];
  signal?: AbortSignal;
}

/** Pass 1: every layer's headers applied in order (see flatten-plan.ts). */
export async function planLayers(src: FlattenSource, limits?: FlattenLimits): Promise<FlattenPlan> {
  const planner = new FlattenPlanner(limits);
  for (const [i, layer] of src.layers.entries()) {
    src.signal?.throwIfAborted();
    planner.startLayer(layerName(i, layer));
    for await (const item of layerItems(src.store, layer, i, src.diffIds[i]!, src.signal)) planner.add(item.header);
  }
  return planner.plan();
}

const TYPEFLAG: Partial<Record<TarHeader['type'], TarTypeflag>> = { file: '0', link: '1', symlink: '2', 'character-device': '3', 'block-device': '4', directory: '5', fifo: '6' };
const BATCH = 1 << 20;

/** The header of entry `h` written as `name` (a directory's name ends in '/'). */
function outHeader(h: TarHeader, name: string, typeflag: TarTypeflag, linkname?: string): OutHeader {
  const out: OutHeader = { name, typeflag, mode: h.mode & 0o7777, uid: h.uid, gid: h.gid, size: typeflag === '0' ? h.size : 0, mtime: Math.floor(h.mtime) };
  if (linkname !== undefined) out.linkname = linkname;
  if (typeflag === '3' || typeflag === '4') {
    out.devmajor = h.devmajor;
    out.devminor = h.devminor;
  }
  if (h.xattrs.size > 0) out.xattrs = h.xattrs;
  return out;
}

/**
 * Pass 2: the flattened tar, following `plan` (see flatten-plan.ts). `mtime` is the time of
 * directories made only as parents.
 */
export async function* flattenedTar(src: FlattenSource, plan: FlattenPlan, opts: { mtime: number }): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let size = 0;
  const put = (b: Buffer): void => {
    if (b.length === 0) return;
    pending.push(b);
    size += b.length;
  };
  const take = (): Buffer => {
    const out = Buffer.concat(pending, size);
    pending = [];
    size = 0;
    return out;
  };
  const header = (h: OutHeader): void => {
    for (const b of encodeHeader(h)) put(b);
  };
  const { dirs } = plan;
  const dir = (name: string): void => {
    if (!dirs.has(name)) return; // written already
    const h = dirs.get(name);
    dirs.delete(name);
    header(h ? outHeader(h, `${name}/`, '5') : { name: `${name}/`, typeflag: '5', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: opts.mtime });
  };
  /** The directories above `name`, top down, that are not written yet. */
  const parents = (name: string): void => {
    for (let i = name.indexOf('/'); i > 0; i = name.indexOf('/', i + 1)) dir(name.slice(0, i));
  };

  if (plan.root) header(outHeader(plan.root, './', '5'));
  let pos = 0;
  for (const [i, layer] of src.layers.entries()) {
    src.signal?.throwIfAborted();
    const what = layerName(i, layer);
    for await (const item of layerItems(src.store, layer, i, src.diffIds[i]!, src.signal)) {
      const action = plan.actions.get(pos++);
      if (!action) continue;
      const h = item.header;
      const flag = TYPEFLAG[h.type];
      const expected = action.kind === 'dir' ? flag === '5' : action.kind === 'link' ? flag === '1' : flag !== undefined && flag !== '1' && flag !== '5';
      if (!expected) throw new OciToolError('DIGEST_MISMATCH', `${what}: entry ${JSON.stringify(h.name)} differs from the first read of the layer`);
      parents(action.name);
      if (action.kind === 'dir') dir(action.name);
      else if (action.kind === 'link') header(outHeader(h, action.name, '1', action.target));
      else {
        header(outHeader(h, action.name, flag!, h.type === 'symlink' ? h.linkname : undefined));
        if (h.type === 'file') {
          for await (const chunk of item.body) {
            put(chunk);
            if (size >= BATCH) yield take();
          }
          put(padding(h.size));
        }
      }
      if (size >= BATCH) yield take();
    }
  }
  // Directories made only as parents of what did not survive (or of whiteouts).
  for (const name of [...dirs.keys()]) {
    parents(name);
    dir(name);
  }
  put(END_OF_ARCHIVE);
  yield take();
}
