import type { Argv } from 'yargs';
import { attach, packArtifact, referrers, type ArtifactFile } from '../../artifact/artifact.js';
import { pullArtifact } from '../../artifact/pull.js';
import { parseKeyValues } from '../../image/config.js';
import { canAddRoot, underLease } from '../../content/store.js';
import { formatReference, type ImageReference } from '../../reference/transport.js';
import type { Descriptor } from '../../spec/types.js';
import { destinationTag } from '../../transport/copy.js';
import { openStore, writeTo } from '../../transport/open.js';
import { OciToolError } from '../../util/errors.js';
import { createdSeconds, parseImageArg, repeated } from '../args.js';
import { commandHandler, defineCommand, digestfileOption, type CommandContext, type GlobalFlags, type Outcome } from '../command.js';
import { table, type Output } from '../output.js';
import { registryOpen, registryOptions, type RegistryFlags } from '../registry-args.js';


/** `PATH` or `PATH:MEDIA/TYPE` (the part after the last ':' is a media type when it has a '/'). */
function fileArg(s: string): ArtifactFile {
  const colon = s.lastIndexOf(':');
  if (colon > 0 && s.slice(colon + 1).includes('/')) return { path: s.slice(0, colon), mediaType: s.slice(colon + 1) };
  return { path: s };
}

interface PackArgs extends RegistryFlags {
  files: string[];
  'artifact-type': string;
  tag?: string;
  subject?: string;
  'media-type'?: string;
  annotation?: string | string[];
}

/** Where an artifact goes without --tag: the subject's repository or layout, untagged. */
function untagged(ref: ImageReference): ImageReference {
  switch (ref.transport) {
    case 'oci':
      return { transport: 'oci', dir: ref.dir };
    case 'docker': {
      const { tag: _t, digest: _d, ...rest } = ref.ref;
      return { transport: 'docker', ref: rest };
    }
    default:
      throw new OciToolError('USAGE', `artifact pack: --subject ${formatReference(ref)}: give --tag for this kind of place`);
  }
}

async function runPack(args: GlobalFlags & PackArgs, out: Output, { signal }: CommandContext): Promise<Outcome> {
  // Every flag is checked before the subject is looked up or anything is written.
  if (args.tag === undefined && args.subject === undefined) throw new OciToolError('USAGE', 'artifact pack: give --tag (or --subject, to attach it untagged next to its subject)');
  const annotations = parseKeyValues(repeated(args.annotation), '--annotation');
  const epoch = createdSeconds(undefined);
  const files = args.files.map(fileArg);
  const subjectRef = args.subject !== undefined ? parseImageArg(args.subject) : undefined;
  const dst = args.tag !== undefined ? parseImageArg(args.tag) : untagged(subjectRef!);
  const tag = destinationTag(dst);
  const registry = await registryOpen(args);
  let subject: Descriptor | undefined;
  if (subjectRef !== undefined) {
    // --creds are the destination's: the subject's registry gets them only on that same host.
    const sameHost = subjectRef.transport !== 'docker' || dst.transport !== 'docker' || subjectRef.ref.domain === dst.ref.domain;
    const { credential: _c, ...withoutCreds } = registry;
    const s = await openStore(subjectRef, sameHost ? registry : withoutCreds);
    try {
      const d = await s.store.resolve(s.reference ?? '');
      subject = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    } finally {
      await s.close?.();
    }
  }
  // Straight into the destination: no temp layout, layers streamed as they are read.
  const desc = await writeTo(dst, registry, (target) =>
    // Into a layout, a lease holds the artifact until index.json lists it (against a concurrent gc).
    underLease(target.store, async () => {
      const d = await packArtifact(target.store, {
        artifactType: args['artifact-type'],
        files,
        annotations,
        ...(epoch !== undefined ? { created: epoch } : {}),
        ...(subject ? { subject } : {}),
        ...(args['media-type'] ? { defaultMediaType: args['media-type'] } : {}),
        signal,
      });
      if (tag !== undefined) await target.store.tag(d, tag);
      else if (canAddRoot(target.store)) await target.store.addRoot(d);
      if (subject) await attach(target.store, d, subject);
      return d;
    }),
  );
  if (subject) out.note('attached', { subject: subject.digest }, `attached to ${subject.digest}`);
  return { reference: dst, descriptor: desc, ...(subject ? { fields: { subject: subject.digest } } : {}) };
}

const packShape = (y: Argv<GlobalFlags>): Argv<GlobalFlags & PackArgs> =>
  digestfileOption(registryOptions(y))
    .positional('files', { type: 'string', array: true, demandOption: true, describe: 'FILE, FILE:MEDIA/TYPE or DIR (one tar+gzip layer)' })
    .option('artifact-type', { type: 'string', demandOption: true, describe: 'the artifactType, e.g. application/spdx+json' })
    .option('tag', { type: 'string', describe: 'where it goes: oci:DIR:TAG, docker://HOST/REPO:TAG, oci-archive:FILE:TAG' })
    .option('subject', { type: 'string', describe: 'attach it to this image (a referrer; without --tag, next to it, untagged)' })
    .option('media-type', { type: 'string', describe: 'media type of file layers (default application/octet-stream)' })
    .option('annotation', { type: 'string', describe: 'KEY=VALUE on the manifest; repeatable' }) as unknown as Argv<GlobalFlags & PackArgs>;

interface PullArgs extends RegistryFlags {
  ref: string;
  dir: string;
}

async function runPull(args: GlobalFlags & PullArgs, out: Output): Promise<Outcome> {
  const ref = parseImageArg(args.ref);
  const opened = await openStore(ref, await registryOpen(args));
  try {
    const desc = await opened.store.resolve(opened.reference ?? '');
    const files = await pullArtifact(opened.store, desc, args.dir, { warn: (m) => out.warn(m) });
    for (const f of files) out.note(f.directory ? 'directory' : 'file', { ...f }, `${f.directory ? 'directory' : 'file'} ${f.title} (${f.digest})`);
    return { reference: ref, descriptor: desc, fields: { dir: args.dir, files: files.length } };
  } finally {
    await opened.close?.();
  }
}

const pullShape = (y: Argv<GlobalFlags>): Argv<GlobalFlags & PullArgs> =>
  registryOptions(y)
    .positional('ref', { type: 'string', demandOption: true, describe: 'the artifact: oci:DIR:TAG, docker://HOST/REPO:TAG, oci:DIR@DIGEST…' })
    .positional('dir', { type: 'string', demandOption: true, describe: 'where its files go (by their title annotations)' }) as unknown as Argv<GlobalFlags & PullArgs>;

export const artifactCommand = defineCommand({
  command: 'artifact',
  describe: 'Package files as OCI artifacts (artifact pack), and fetch them (artifact pull)',
  builder: (y) =>
    y
      .command('pack <files..>', 'Pack files and directories into an OCI 1.1 artifact', packShape, commandHandler('artifact pack', runPack) as (a: unknown) => Promise<void>)
      .command('pull <ref> <dir>', "Write an artifact's files into DIR by their titles (never outside it)", pullShape, commandHandler('artifact pull', runPull) as (a: unknown) => Promise<void>)
      .demandCommand(1, 'name an artifact action: pack or pull') as unknown as Argv<GlobalFlags>,
  run: async () => undefined,
});

export const referrersCommand = defineCommand({
  command: 'referrers <ref>',
  describe: 'List the artifacts attached to an image (referrers API, else the sha256-<hex> fallback tag)',
  builder: (y) =>
    registryOptions(y)
      .positional('ref', { type: 'string', demandOption: true, describe: 'the image: oci:DIR:TAG, oci:DIR@DIGEST, docker://HOST/REPO:TAG…' })
      .option('artifact-type', { type: 'string', describe: 'only referrers of this artifactType' }),
  run: async (args, out) => {
    const ref = parseImageArg(args.ref);
    const opened = await openStore(ref, await registryOpen(args));
    try {
      const subject = await opened.store.resolve(opened.reference ?? '');
      const found = await referrers(opened.store as Parameters<typeof referrers>[0], subject, args['artifact-type'] !== undefined ? { artifactType: args['artifact-type'] } : {});
      if (args.json || args.quiet) for (const d of found) out.item('referrer', { ...d }, d.digest);
      else {
        const rows = [['DIGEST', 'ARTIFACT TYPE', 'SIZE'], ...found.map((d) => [d.digest, d.artifactType ?? '', String(d.size)])];
        for (const line of table(rows)) out.result(line.trimEnd());
      }
      return { reference: ref, printed: true, descriptor: subject, fields: { count: found.length } };
    } finally {
      await opened.close?.();
    }
  },
});
