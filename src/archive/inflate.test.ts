import { describe, expect, it } from 'vitest';
import { errorOf } from '../../test/helpers/errors.js';
import { INFLATE_FLOOR, INFLATE_RATIO, inflateLimit } from './inflate.js';

describe('inflateLimit', () => {
  it('is a ratio of the compressed size, with a floor; OCITOOL_MAX_INFLATED sets it in bytes or K/M/G/T', () => {
    expect(inflateLimit(1000, {})).toBe(INFLATE_FLOOR);
    expect(inflateLimit(1e9, {})).toBe(1e9 * INFLATE_RATIO);
    expect(inflateLimit(1e9, { OCITOOL_MAX_INFLATED: '1048576' })).toBe(1048576);
    expect(inflateLimit(1, { OCITOOL_MAX_INFLATED: '2G' })).toBe(2 * 1024 ** 3);
    expect(inflateLimit(1, { OCITOOL_MAX_INFLATED: '100GiB' })).toBe(100 * 1024 ** 3);
    expect(errorOf(() => inflateLimit(1, { OCITOOL_MAX_INFLATED: 'lots' })).message).toBe('OCITOOL_MAX_INFLATED=lots: not a byte count (like 2147483648 or 2G)');
  });
});
