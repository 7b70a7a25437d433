import type { Argv } from 'yargs';
import { checkCompressionLevel, LEVELS_HELP } from '../layer/levels.js';
import type { ImageReference } from '../reference/transport.js';
import { OciToolError } from '../util/errors.js';

/** The --tag text of commands that write a new image (build, flatten). */
export const NEW_IMAGE_TAG_HELP = 'where the image goes: oci:DIR:TAG, docker://HOST/REPO:TAG, oci-archive:FILE:TAG, docker-archive:FILE:NAME:TAG';

/** How commands that make a layer write it: --compression, --compression-level, --format. */
export function layerOutputOptions<T>(y: Argv<T>) {
  return y
    .option('compression', { choices: ['gzip', 'zstd', 'none'] as const, default: 'gzip' as const, describe: 'compression of new layers' })
    .option('compression-level', { type: 'number', describe: `level of --compression: ${LEVELS_HELP}` })
    .option('format', { choices: ['oci', 'docker'] as const, default: 'oci' as const, describe: 'OCI or Docker schema 2 media types' });
}

/** The flags layerOutputOptions adds, checked (before any work), as the library's options. */
export function layerOutput(args: { compression: 'gzip' | 'zstd' | 'none'; 'compression-level'?: number | undefined; format: 'oci' | 'docker' }): { compression: 'gzip' | 'zstd' | 'none'; level?: number; format: 'oci' | 'docker' } {
  const level = args['compression-level'];
  checkCompressionLevel(args.compression, level);
  return { compression: args.compression, ...(level !== undefined ? { level } : {}), format: args.format };
}

/** Refuses a --tag that cannot take a new image (dir:, a digest). */
export function checkNewImageDestination(command: string, arg: string, dst: ImageReference): void {
  if (dst.transport === 'dir' || (dst.transport === 'oci' && dst.digest !== undefined) || (dst.transport === 'docker' && dst.ref.digest !== undefined)) {
    throw new OciToolError('UNSUPPORTED', `${command} --tag ${arg}: expected oci:DIR[:TAG], docker://NAME[:TAG], docker-archive:FILE[:NAME:TAG] or oci-archive:FILE[:TAG]`);
  }
}
