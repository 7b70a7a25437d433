import { describe, expect, it } from 'vitest';
import { jsonErrorOffset, lineAndColumn } from './json-position.js';

describe('jsonErrorOffset', () => {
  it.each([
    '{"a":1}',
    '[]',
    ' {"a":[true,false,null,1.5e3,-0,"\\u00e9\\n"], "b":{}} ',
    '"x"',
  ])('valid: %s', (text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(jsonErrorOffset(text)).toBeUndefined();
  });

  it.each([
    ['{"auth": hunter2}', 9],
    ['[1,2,]', 5],
    ['{"a":"\\x"}', 7],
    ['"abc', 4],
    ['{"a" 1}', 5],
    ['  ', 2],
    ['{"a":-}', 5],
    ['[1] x', 4],
    ['{"a":1,}', 7],
    ['{"a":"tab\there"}', 9],
    ['[01]', 2],
  ])('%j breaks at %i (where JSON.parse gives up too)', (text, at) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(jsonErrorOffset(text)).toBe(at);
  });

  it('stops at a nesting depth no config file needs', () => {
    expect(jsonErrorOffset('['.repeat(100_000))).toBe(513);
  });
});

describe('lineAndColumn', () => {
  it('counts from 1', () => {
    expect(lineAndColumn('ab', 0)).toBe('line 1, column 1');
    expect(lineAndColumn('{\n  "a": x', 9)).toBe('line 2, column 8');
    expect(lineAndColumn('{\n', 2)).toBe('line 2, column 1');
  });
});
