'use strict';
const { formatISO } = require('date-fns');

// The warm case of the benchmark changes the next line (one line of one app file).
const PREFIX = 'bench-app';

exports.format = (what) => `${PREFIX} ${formatISO(new Date())} ${what}`;
