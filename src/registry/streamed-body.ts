import { PassThrough, type Readable } from 'node:stream';
import { OciToolError } from '../util/errors.js';

/** Bytes read ahead of the socket for a streamed request body: reading and sending overlap. */
const READ_AHEAD = 1024 * 1024;

/**
 * A request body streamed from `source` through a read-ahead buffer, so that the source is read
 * while earlier bytes are still on their way to the socket. It remembers the source's own verdict
 * (a digest or size mismatch), which is the cause to report when the request fails.
 *
 * The request bound needs nothing here: undici's headers timeout is refreshed whenever the socket
 * pushes back and when the body ends, so a registry that stops taking bytes, or does not answer
 * after the last one, times out, while a slow source does not (store.test.ts tests both).
 */
export class StreamedBody extends PassThrough {
  /** The source's own verdict, if it failed with one. */
  failure?: OciToolError;

  constructor(source: Readable) {
    super({ highWaterMark: READ_AHEAD });
    // The source's errors go on to the body, which undici then reports. Piped, not in a pipeline:
    // undici drops the body once the request is done, which must not destroy (and error) the source,
    // whose owner ends it.
    source.on('error', (err) => {
      if (err instanceof OciToolError) this.failure ??= err;
      this.destroy(err);
    });
    source.pipe(this);
    this.on('error', () => undefined);
  }
}
