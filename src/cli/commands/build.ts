import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { CopyEvent } from '../../content/copy.js';
import { registryOpen, registryOptions } from '../registry-args.js';
import type { LayerSpec } from '../../image/build.js';
import { layerOutput, checkNewImageDestination, layerOutputOptions, NEW_IMAGE_TAG_HELP } from '../image-out-args.js';
import { OciToolError, errno } from '../../util/errors.js';
import { normalizePort, parseKeyValues } from '../../image/config.js';
import { createdSeconds, parseImageArg, platformsArg } from '../args.js';
import { formatPlatform } from '../../spec/platform.js';
import { defineCommand, digestfileOption } from '../command.js';
import { progressReporter } from '../progress.js';
import { humanSize } from '../output.js';
import { rawArgv } from '../raw-argv.js';
import { flagGiven } from '../app-args.js';
import { appDefaults } from '../../app/build-app.js';

const list = { type: 'string', array: true, default: [] as string[] } as const;

/**
 * `SRC[:DEST]`: the destination is what follows the last ':' when it is an absolute path. Any other
 * text after a ':' is a usage error (a relative destination, most likely), unless the whole argument
 * names an existing file (a ':' in its name).
 */
export function parseAdd(s: string): { src: string; dest: string } {
  const i = s.lastIndexOf(':');
  if (i > 0 && s[i + 1] === '/') return { src: s.slice(0, i), dest: s.slice(i + 1) };
  if (i > 0 && !existsSync(s)) {
    const dest = s.slice(i + 1);
    throw new OciToolError('USAGE', `--add ${s}: the destination ${JSON.stringify(dest)} must be an absolute path in the image, e.g. --add ${s.slice(0, i)}:/${dest.replace(/^\.?\/*/, '')}`);
  }
  return { src: s, dest: '/' };
}

/** Checks, before any layer is made, that every --add source, --diff directory and --ignore-file exists. */
async function checkInputs(layers: LayerSpec[], ignoreFile: string | undefined): Promise<void> {
  const paths = layers.flatMap((l): [flag: string, path: string][] => (l.kind === 'add' ? [['--add', l.src]] : l.kind === 'diff' ? [['--diff', l.lower], ['--diff', l.upper]] : []));
  if (ignoreFile !== undefined) paths.push(['--ignore-file', ignoreFile]);
  for (const [flag, path] of paths) {
    try {
      await stat(path);
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new OciToolError('NOT_FOUND', `${flag} ${path}: no such file or directory`);
      throw new OciToolError('IO', `${flag} ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** An exec-form list: repeated flags, or one JSON array. */
export function execForm(values: string[] | undefined, flag = 'exec form'): string[] | undefined {
  if (values === undefined || values.length === 0) return undefined;
  if (values.length === 1 && values[0]!.trimStart().startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(values[0]!);
    } catch {
      v = undefined;
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new OciToolError('USAGE', `${flag} ${values[0]}: expected a JSON array of strings, such as '["node", "index.js"]'`);
    return v;
  }
  return values;
}

/** Layers in the order --add and --diff were given on the command line. */
export function layerSpecs(argv: string[]): LayerSpec[] {
  const specs: LayerSpec[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--add' || a.startsWith('--add=')) {
      const v = a === '--add' ? argv[++i] : a.slice('--add='.length);
      if (v === undefined) throw new OciToolError('USAGE', '--add needs SRC[:DEST]');
      specs.push({ kind: 'add', ...parseAdd(v) });
    } else if (a === '--diff') {
      const lower = argv[++i];
      const upper = argv[++i];
      if (lower === undefined || upper === undefined) throw new OciToolError('USAGE', '--diff needs LOWER and UPPER');
      specs.push({ kind: 'diff', lower, upper });
    }
  }
  return specs;
}

export default defineCommand({
  command: 'build',
  describe: 'Build an image from directories (and an optional base) into a layout',
  builder: (y) =>
    registryOptions(
    digestfileOption(layerOutputOptions(y
      .option('tag', { type: 'string', describe: `${NEW_IMAGE_TAG_HELP} (required, unless --app's package.json gives one)` })
      .option('app', { type: 'string', describe: 'DIR: package a Node.js app: a layer of its production dependencies, one of its files, config from its package.json ("ocitool" holds build options)' })
      .option('from', { type: 'string', describe: 'base image reference (default: scratch)' })
      .option('platform', { type: 'string', describe: "OS/ARCH[/VARIANT] to pick from a base index and to record (default: the base's, this host's image from a base index; linux/amd64 without a base); a comma list (linux/amd64,linux/arm64) builds one image per platform, sharing the new layers, under one index" })
      .option('allow-native', { type: 'boolean', default: false, describe: "--app: package dependencies with native parts (.node files, binding.gyp, lockfile os/cpu fields) into images for platforms other than this host's (refused by default)" })
      .option('add', { ...list, describe: 'SRC[:/DEST]: a layer from a directory or file, placed at the absolute path DEST (default /); repeatable, one layer each' })
      .option('diff', { type: 'string', array: true, nargs: 2, describe: 'LOWER UPPER: one layer with the changes that turn LOWER into UPPER; repeatable' })
      .option('env', { ...list, describe: 'KEY=VALUE; repeatable' })
      .option('entrypoint', { type: 'string', array: true, describe: 'exec form: repeatable, one word each (--entrypoint=-c for dashes), or one JSON array' })
      .option('cmd', { type: 'string', array: true, describe: 'exec form: repeatable, one word each, or one JSON array' })
      .option('workdir', { type: 'string', describe: 'working directory of the container' })
      .option('user', { type: 'string', describe: 'USER[:GROUP] the container runs as' })
      .option('label', { ...list, describe: 'KEY=VALUE in the config; repeatable' })
      .option('expose', { ...list, describe: 'PORT[/tcp|udp|sctp]; repeatable' })
      .option('volume', { ...list, describe: 'PATH; repeatable' })
      .option('stop-signal', { type: 'string', describe: 'signal that stops the container, e.g. SIGTERM' })
      .option('annotation', { ...list, describe: 'KEY=VALUE on the manifest; repeatable' })
      .option('exclude', { ...list, describe: '.dockerignore-style pattern to leave out of --add layers; repeatable' })
      .option('ignore-file', { type: 'string', describe: 'a .dockerignore file' })
      .option('sbom', { choices: ['spdx', 'none'] as const, describe: "with --app: attach an SPDX 2.3 SBOM of the production packages to the image as a referrer (default spdx), or none" })
      .option('cache', { type: 'boolean', default: true, describe: "reuse --app's dependency layer from $OCITOOL_CACHE_DIR (default ~/.cache/ocitool) while the lockfile and the installed files' metadata are unchanged; --no-cache packs it again (and refreshes the cache)" })
      .option('chown', { type: 'string', default: '0:0', describe: 'UID:GID owning every file' })
      .option('created', { type: 'string', describe: 'creation time (RFC 3339 or epoch seconds; default SOURCE_DATE_EPOCH, else now); also clamps file mtimes' }))),
    ),
  run: async (args, out, { signal }) => {
    if (args.sbom === 'spdx' && args.app === undefined) throw new OciToolError('USAGE', 'build --sbom spdx: needs --app DIR (the SBOM describes the app\'s packages)');
    const app = args.app !== undefined ? await appDefaults(args.app) : undefined;
    const o = app?.options ?? {};
    const tag = args.tag ?? o.tag;
    if (tag === undefined) throw new OciToolError('USAGE', `build: --tag is required${app ? ` (or "ocitool": {"tag": …} in ${app.manifest.file})` : ''}`);
    const dst = parseImageArg(tag);
    checkNewImageDestination('build', tag, dst);
    const chown = /^(\d+):(\d+)$/.exec(args.chown);
    if (!chown) throw new OciToolError('USAGE', `--chown ${args.chown}: expected UID:GID`);
    const layerOut = layerOutput({
      ...args,
      compression: flagGiven('compression') ? args.compression : (o.compression ?? args.compression),
      format: flagGiven('format') ? args.format : (o.format ?? args.format),
    });
    // --app's package.json options and defaults are merged under these by the library (build's `app`).
    const entrypoint = execForm(args.entrypoint, '--entrypoint');
    const cmd = execForm(args.cmd, '--cmd');
    const workdir = args.workdir;
    const user = args.user;
    const added = layerSpecs(rawArgv());
    // package.json's platform and allowNative are the library's defaults too (withApp).
    const platforms = platformsArg(args.platform);
    const created = createdSeconds(args.created);
    // Every flag is checked before any layer is made (the config's own checks come too late).
    parseKeyValues(args.env, '--env');
    args.expose.forEach(normalizePort);
    const env = args.env;
    const expose = args.expose;
    const volumes = args.volume;
    const labels = parseKeyValues(args.label, '--label');
    const annotations = parseKeyValues(args.annotation, '--annotation');
    const from = args.from ?? o.from;
    const fromRef = from !== undefined ? parseImageArg(from) : undefined;
    await checkInputs(added, args['ignore-file']);
    // --add and --diff in order (after the app's layers: dependencies, then its files).
    const layers = added;
    const registry = await registryOpen(args);
    const stopSignal = args['stop-signal'];
    const progress = progressReporter(out, process.stderr, Date.now, signal);
    // Transfers worth showing: to a registry or an archive, or a base's layers fetched from a registry.
    const showProgress = dst.transport !== 'oci' || fromRef?.transport === 'docker';
    // The layer engine (tree walk, tar, gzip) loads only when building. Any destination: new layers
    // stream into it (a layout, a registry) or a private spool (an archive); base layers are mounted,
    // streamed or fetched by the copy that writes the image, never downloaded first.
    const { build } = await import('../../image/build.js');
    const result = await build(dst, {
      signal,
      ...(fromRef ? { from: fromRef } : {}),
      ...(registry.insecure ? { insecure: true } : {}),
      // --creds are the destination registry's, and the base's only on that same host (or when the
      // destination is no registry): a password never goes to another registry.
      ...(registry.credential && dst.transport === 'docker' ? { dstCredential: registry.credential } : {}),
      ...(registry.credential && fromRef?.transport === 'docker' && (dst.transport !== 'docker' || dst.ref.domain === fromRef.ref.domain) ? { srcCredential: registry.credential } : {}),
      ...(platforms ? { platforms } : {}),
      layers,
      config: {
        env,
        ...(entrypoint ? { entrypoint } : {}),
        ...(cmd ? { cmd } : {}),
        ...(workdir !== undefined ? { workdir } : {}),
        ...(user !== undefined ? { user } : {}),
        labels,
        expose,
        volumes,
        ...(stopSignal !== undefined ? { stopSignal } : {}),
      },
      annotations,
      exclude: args.exclude,
      ...(args['ignore-file'] ? { ignoreFile: args['ignore-file'] } : {}),
      chown: { uid: Number(chown[1]), gid: Number(chown[2]) },
      ...(created !== undefined ? { created } : {}),
      ...layerOut,
      ...(app ? { app, ...(flagGiven('allow-native') ? { allowNative: args['allow-native'] } : {}), appCache: args.cache ? ('use' as const) : ('refresh' as const), ...(args.sbom ? { sbom: args.sbom } : {}) } : {}),
      warn: (m) => out.warn(m),
      ...(showProgress ? { onProgress: (e: CopyEvent) => progress.onProgress(e) } : {}),
      onLayer: (layer, spec, stats) => {
        const what = spec.kind === 'add' ? `--add ${spec.src}:${spec.dest}` : spec.kind === 'select' ? `--app ${spec.src} (${spec.label})` : `--diff ${spec.lower} ${spec.upper}`;
        const extra = stats ? ` (+${stats.added} ~${stats.changed} -${stats.deleted})` : '';
        const d = layer.descriptor;
        const fields = { digest: d.digest, mediaType: d.mediaType, size: d.size, uncompressedSize: layer.uncompressedSize, from: what, ...(stats ? { added: stats.added, changed: stats.changed, deleted: stats.deleted } : {}) };
        out.note('layer', fields, `layer ${d.digest} ${humanSize(d.size)} (${humanSize(layer.uncompressedSize)} uncompressed) from ${what}${extra}`);
      },
    }).catch((err: unknown) => {
      if (showProgress) progress.fail();
      throw err;
    });
    if (showProgress) progress.finish();
    if (result.images.length === 1) out.note('config', { digest: result.config.digest, mediaType: result.config.mediaType, size: result.config.size }, `config ${result.config.digest}`);
    else {
      for (const img of result.images) {
        const platform = formatPlatform(img.platform);
        out.note('image', { platform, digest: img.manifest.digest, config: img.config.digest }, `image ${platform} ${img.manifest.digest} (config ${img.config.digest})`);
      }
    }
    const sbom = result.sbom;
    if (sbom) out.note('sbom', { digest: sbom.descriptor.digest, mediaType: sbom.descriptor.mediaType, size: sbom.descriptor.size, artifactType: 'application/spdx+json', subject: sbom.subject.digest, packages: sbom.packages }, `sbom ${sbom.descriptor.digest} (${sbom.packages} packages)`);
    return { reference: dst, descriptor: result.manifest, wrote: true, fields: { layers: result.layers.length, ...(showProgress ? progress.counts() : {}) } };
  },
});
