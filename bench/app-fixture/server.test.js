'use strict';
// A dev-only file: .dockerignore keeps it (and vitest, a dev dependency) out of the image.
const { test, expect } = require('vitest');
const { format } = require('./lib/format.js');
test('format', () => expect(format('x')).toMatch(/^bench-app /));
