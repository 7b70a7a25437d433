import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Argv } from 'yargs';
import { formatReference, type ImageReference } from '../reference/transport.js';
import type { Descriptor } from '../spec/types.js';
import { OciToolError, errno } from '../util/errors.js';
import { atomicWriteFile } from '../util/fs.js';
import { commandSignal, nameCommand } from './interrupt.js';
import { makeOutput, type Output } from './output.js';

/** Flags every command has. */
export interface GlobalFlags {
  debug: boolean;
  quiet: boolean;
  json: boolean;
}

/** What main gives every command besides its flags and output. */
export interface CommandContext {
  /**
   * Aborted by Ctrl-C (SIGINT) or SIGTERM, its reason an OciToolError('INTERRUPTED'): pass it to the
   * library call, which stops its transfers and removes its temp files; main then reports the
   * interruption (exit 130) whatever error the command ends with.
   */
  signal: AbortSignal;
}

/**
 * What a command did, reported by one mechanism (reportOutcome): in text mode the image's digest
 * (or `line`) as the last line on stdout; in --json the `done` event, `{"event":"done","command",
 * "reference","digest","mediaType","size", ...fields}`; and the digest to --digestfile.
 */
export interface Outcome {
  /** The place the command wrote or read. */
  reference?: ImageReference;
  /** The image (manifest or index) written or read. */
  descriptor?: Descriptor;
  /** The command wrote `descriptor` to `reference`: reported as the place lists it (see asListed). */
  wrote?: boolean;
  /** The last line in text mode when there is no digest to print (a summary). */
  line?: string;
  /** Nothing more in text mode: the command printed its results (a listing, a document). */
  printed?: boolean;
  /** Counts and other facts for the done event. */
  fields?: Record<string, unknown>;
}

/** A command: its yargs shape and a handler that gets parsed flags, the output and the context. */
export interface Command<A = Record<string, unknown>> {
  command: string;
  describe: string;
  builder: (y: Argv<GlobalFlags>) => Argv<GlobalFlags & A>;
  run: (args: GlobalFlags & A, out: Output, ctx: CommandContext) => Promise<Outcome | void>;
}

export const defineCommand = <A>(c: Command<A>): Command<A> => c;

/** `--digestfile`, for the commands that write an image (skopeo's flag). */
export const digestfileOption = <T>(y: Argv<T>): Argv<T & { digestfile: string | undefined }> =>
  y.option('digestfile', { type: 'string', describe: 'after the image is committed, write its digest to FILE (atomically; never on failure)' });

/**
 * The yargs handler of a command (top-level or nested, like `artifact pack`): names the command for
 * Ctrl-C, runs it with its output and signal, then reports its outcome.
 */
export function commandHandler<A>(name: string, run: Command<A>['run']): (args: GlobalFlags & A) => Promise<void> {
  return async (args) => {
    nameCommand(name);
    const out = makeOutput(args);
    const { digestfile } = args as { digestfile?: string };
    if (digestfile !== undefined) await checkDigestfile(digestfile);
    const outcome = await run(args, out, { signal: commandSignal() });
    await reportOutcome(name, args as GlobalFlags & { digestfile?: string }, out, outcome ?? {});
  };
}

async function reportOutcome(name: string, args: { digestfile?: string }, out: Output, outcome: Outcome): Promise<void> {
  const { reference, line, fields, printed } = outcome;
  const descriptor = reference && outcome.descriptor && outcome.wrote ? await asListed(reference, outcome.descriptor) : outcome.descriptor;
  if (args.digestfile !== undefined && descriptor) await writeDigestfile(args.digestfile, descriptor.digest);
  if (printed) {
    // The results are out already.
  } else if (descriptor) out.result(descriptor.digest);
  else if (line !== undefined) out.result(line);
  out.event('done', {
    command: name,
    ...(reference ? { reference: formatReference(reference) } : {}),
    ...(descriptor ? { digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size } : {}),
    ...fields,
  });
}

/** Before any work: the digest file goes into a folder that exists (none is made for it). */
async function checkDigestfile(file: string): Promise<void> {
  const dir = dirname(file);
  const s = await stat(dir).catch(() => undefined);
  if (!s?.isDirectory()) throw new OciToolError('USAGE', `--digestfile ${file}: ${dir} is not a folder`);
}

/** The digest alone (no newline, as skopeo writes it), replacing `file` atomically. */
async function writeDigestfile(file: string, digest: string): Promise<void> {
  try {
    await atomicWriteFile(file, digest, dirname(file));
  } catch (err) {
    throw new OciToolError('IO', `--digestfile ${file}: ${errno(err) ?? (err as Error).message} (the image was written: ${digest})`, { cause: err });
  }
}

/**
 * The image as `ls` and `inspect` show it. A docker archive keeps no manifest: its reader makes one
 * (plain tar layers, named by their diffIDs), and that is the digest reported for it, not the one of
 * the manifest that was copied in.
 */
async function asListed(ref: ImageReference, desc: Descriptor): Promise<Descriptor> {
  if (ref.transport !== 'docker-archive') return desc;
  const { openStore } = await import('../transport/open.js');
  const opened = await openStore(ref);
  try {
    const listed = await opened.store.resolve(opened.reference ?? '');
    return { mediaType: listed.mediaType, digest: listed.digest, size: listed.size };
  } finally {
    await opened.close?.();
  }
}
