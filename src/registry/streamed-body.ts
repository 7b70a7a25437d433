import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { OciToolError } from '../util/errors.js';

/** Bytes read ahead of the socket for a streamed request body: reading and sending overlap. */
const READ_AHEAD = 8 * 1024 * 1024;
const TICK_MS = 250;

/** Error codes network.ts words as timeouts (see transferFailure). */
export const UPLOAD_STALLED = 'OCITOOL_UPLOAD_STALLED';
export const NO_ANSWER = 'UND_ERR_HEADERS_TIMEOUT';

const timeoutError = (code: string): Error => Object.assign(new Error(code === UPLOAD_STALLED ? 'the registry stopped taking the upload' : 'no answer'), { code });

/**
 * A request body streamed from `source` with a read-ahead buffer, under the request bound: the
 * registry may stay `timeoutMs` without taking a byte that is ready for it, and may take `timeoutMs`
 * to answer once the last byte is sent. A slow source (a layer being compressed) is no timeout: only
 * bytes that wait for the registry count. (undici's own headers timeout runs from the start of the
 * request, which would end a long streamed upload; it is switched off for these bodies.)
 */
export class StreamedBody extends Transform {
  private last = Date.now();
  private timer: NodeJS.Timeout;
  private sentAll = false;
  /** The source's own verdict, if it failed with one (a digest or size mismatch). */
  failure?: OciToolError;

  constructor(
    source: Readable,
    private readonly timeoutMs: number,
    private readonly onTimeout: (err: Error) => void,
  ) {
    super({ highWaterMark: READ_AHEAD });
    // pipeline passes the source's errors (a digest mismatch) on to the body, which undici reports.
    pipeline(source, this, () => undefined);
    source.once('error', (err) => {
      if (err instanceof OciToolError) this.failure ??= err;
    });
    this.on('error', () => undefined);
    this.once('end', () => {
      this.sentAll = true;
      this.last = Date.now();
    });
    this.timer = setInterval(() => this.tick(), Math.min(TICK_MS, timeoutMs / 4));
    this.timer.unref();
    this.once('close', () => !this.sentAll && this.answered());
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.last = Date.now();
    cb(null, chunk);
  }

  private tick(): void {
    const idle = Date.now() - this.last;
    if (idle < this.timeoutMs) return;
    if (this.sentAll) {
      this.answered();
      this.onTimeout(timeoutError(NO_ANSWER));
    } else if (this.readableLength > 0) {
      this.answered();
      this.onTimeout(timeoutError(UPLOAD_STALLED));
    } else this.last = Date.now(); // nothing waiting for the registry: the source is slow
  }

  /** The answer's headers came (or the request ended): the bound no longer applies. */
  answered(): void {
    clearInterval(this.timer);
  }
}
