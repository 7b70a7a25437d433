/**
 * Ctrl-C (SIGINT) and SIGTERM for the CLI, in one place. While a command runs, the first signal aborts
 * the command's AbortSignal (its reason an OciToolError('INTERRUPTED') naming the command): the library
 * call stops its transfers and removes its temp files, the progress display clears itself, and main
 * reports one line and exits 130. A second signal, or a command still running GRACE_MS after the
 * first, ends the process at once (130) after removing the temp files still held (util/fs.ts).
 */
import { OciToolError } from '../util/errors.js';
import { removeHeldTempsNow } from '../util/fs.js';

export const EXIT_INTERRUPTED = 130;
/** How long an interrupted command may take to wind down before the process ends anyway (within a second of the signal). */
export const GRACE_MS = 900;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export interface Interrupts {
  readonly signal: AbortSignal;
  /** Names the command in the message (set once the command is known). */
  name: string;
  /** Stops listening (the command is over). */
  dispose(): void;
}

let current: Interrupts | undefined;

/**
 * On a terminal, what puts the interruption's line at the start of a clean line: the ^C the terminal
 * echoed is erased (the progress display, when there is one, has erased itself already).
 */
export const lineStart = (): string => (process.stderr.isTTY ? '\r\x1b[K' : '');

/**
 * The running command's signal, for handlers yargs calls without main's context (nested commands like
 * `artifact pack`); an unaborted signal when no command runs.
 */
export const commandSignal = (): AbortSignal => current?.signal ?? new AbortController().signal;

/** Names the running command in the interruption's message (`artifact pack: interrupted`). */
export function nameCommand(name: string): void {
  if (current) current.name = name;
}

export function catchInterrupts(): Interrupts {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const state: Interrupts = {
    signal: controller.signal,
    name: '',
    dispose: () => {
      for (const s of SIGNALS) process.removeListener(s, onSignal);
      clearTimeout(timer);
      if (current === state) current = undefined;
    },
  };
  current = state;
  const message = (): string => `${state.name ? `${state.name}: ` : ''}interrupted`;
  const endNow = (): void => {
    removeHeldTempsNow();
    process.stderr.write(`${lineStart()}ocitool: ${message()}\n`);
    process.exit(EXIT_INTERRUPTED);
  };
  function onSignal(): void {
    if (controller.signal.aborted) return endNow();
    controller.abort(new OciToolError('INTERRUPTED', message()));
    timer = setTimeout(endNow, GRACE_MS);
    timer.unref();
  }
  for (const s of SIGNALS) process.on(s, onSignal);
  return state;
}
