'use strict';
const ms = require('ms');
const debugMs = require('debug/node_modules/ms');
const compare = require('@isaacs/string-locale-compare')('en');
const lib = require('./lib/greet.js');
console.log(`${lib.greet()} ms=${ms(90000)} nested=${debugMs(2000)} sorted=${['b', 'a'].sort(compare).join('')} env=${process.env.NODE_ENV}`);
