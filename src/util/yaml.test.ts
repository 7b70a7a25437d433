import { describe, expect, it } from 'vitest';
import { parseYaml } from './yaml.js';

describe('parseYaml (the subset config files use)', () => {
  it('reads skopeo sync files: hosts with ports, nested blocks, block and flow sequences, quotes, comments', () => {
    const text = [
      '# mirror list',
      'localhost:5000:',
      '  tls-verify: false  # plain HTTP',
      '  images:',
      '    busybox: []',
      '    redis:',
      '      - "7.0"',
      "      - '6.2'",
      '      - 1.0',
      '    nginx: [a, "b c", \'d#e\']',
      '  images-by-tag-regex:',
      "    alpine: '^3\\.1[0-9]$'",
      '    x: ^1\\.13\\.[12]-alpine$',
      '  credentials: {username: u, password: "p:w #1"}',
      'quay.io:',
      '  images:',
      '    coreos/etcd:',
      '    - latest',
      '  nested: {a: [1, 2], b: {}}',
    ].join('\n');
    expect(parseYaml(text, 'f.yaml')).toEqual({
      'localhost:5000': {
        'tls-verify': 'false',
        images: { busybox: [], redis: ['7.0', '6.2', '1.0'], nginx: ['a', 'b c', 'd#e'] },
        'images-by-tag-regex': { alpine: '^3\\.1[0-9]$', x: '^1\\.13\\.[12]-alpine$' },
        credentials: { username: 'u', password: 'p:w #1' },
      },
      'quay.io': { images: { 'coreos/etcd': ['latest'] }, nested: { a: ['1', '2'], b: {} } },
    });
  });

  it('empty values are null; an empty file is null; one leading --- is fine', () => {
    expect(parseYaml('a:\nb: ~\n', 'f')).toEqual({ a: null, b: null });
    expect(parseYaml('# nothing\n\n', 'f')).toBeNull();
    expect(parseYaml('---\na: 1\n', 'f')).toEqual({ a: '1' });
  });

  it('refuses what it does not read, naming file and line', () => {
    const bad: [string, RegExp][] = [
      ['a:\n\tb: 1\n', /^f:2: tabs/],
      ['a: 1\na: 2\n', /^f:2: key "a" given twice/],
      ['a: [1, 2\n', /^f:1: a flow collection must close/],
      ['a: "open\n', /^f:1: unterminated/],
      ['a: &anchor 1\n', /^f:1: YAML feature not supported/],
      ['a: |\n  text\n', /^f:1: YAML feature not supported/],
      ['a: 1\n---\nb: 2\n', /^f:2: one document only/],
      ['a:\n  b: 1\n    c: 2\n', /^f:3: (unexpected indentation|expected)/],
      ['- a\n- b: c\n', /^f:2: mappings inside sequence items/],
      ['h:\n  __proto__: {tls-verify: "false"}\n', /^f:2: key "__proto__" is not allowed/],
      ['h: {constructor: 1}\n', /^f:1: key "constructor" is not allowed/],
      [`${'['.repeat(40)}${']'.repeat(40)}`, /nested deeper|expected/],
    ];
    for (const [text, re] of bad) expect(() => parseYaml(text, 'f'), text).toThrow(re);
  });
});
