'use strict';
const http = require('http');
const express = require('express');
const ms = require('ms');
const debugMs = require('debug/node_modules/ms');
const compare = require('@isaacs/string-locale-compare')('en');
const lib = require('./lib/greet.js');

// An express app on a loopback port, asked once: its answer is part of what the app prints.
const app = express();
app.get('/', (req, res) => res.send(`express=${req.query.say}`));
const server = app.listen(0, '127.0.0.1', () => {
  const timer = setTimeout(() => process.exit(3), 5000);
  http.get({ host: '127.0.0.1', port: server.address().port, path: '/?say=ok' }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => {
      clearTimeout(timer);
      server.close();
      console.log(`${lib.greet()} ms=${ms(90000)} nested=${debugMs(2000)} sorted=${['b', 'a'].sort(compare).join('')} env=${process.env.NODE_ENV} ${body}`);
    });
  });
});
