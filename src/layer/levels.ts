/** Compression levels: one range everywhere (build, copy, convert, repack and the library). */
import { OciToolError } from '../util/errors.js';
import type { Compression } from './compression.js';

export const COMPRESSION_LEVELS: Record<Compression, { min: number; max: number; default?: number }> = {
  gzip: { min: 0, max: 9, default: 6 },
  zstd: { min: 1, max: 19, default: 3 },
  none: { min: 0, max: 0 },
};

/** Checks a compression level for `kind`: a usage error naming the range otherwise. */
export function checkCompressionLevel(kind: Compression, level: number | undefined, what = '--compression-level'): void {
  if (level === undefined) return;
  const r = COMPRESSION_LEVELS[kind];
  if (kind === 'none') throw new OciToolError('USAGE', `${what} ${level}: uncompressed layers take no level`);
  if (!Number.isInteger(level) || level < r.min || level > r.max) throw new OciToolError('USAGE', `${what} ${level}: ${kind} levels are ${r.min}-${r.max}`);
}


/** The ranges, for --help (from the table above: one range everywhere). */
export const LEVELS_HELP = (['gzip', 'zstd'] as const).map((k) => `${k} ${COMPRESSION_LEVELS[k].min}-${COMPRESSION_LEVELS[k].max} (default ${COMPRESSION_LEVELS[k].default})`).join(', ');
