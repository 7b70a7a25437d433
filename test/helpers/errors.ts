import { OciToolError } from '../../src/util/errors.js';

/** The OciToolError `fn` throws; anything else (or nothing) fails the test. */
export function errorOf(fn: () => unknown): OciToolError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OciToolError) return err;
    throw err;
  }
  throw new Error('expected an error');
}
