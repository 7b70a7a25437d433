'use strict';
const _ = require('lodash');
const moment = require('moment');

exports.routes = (app, format) => {
  app.get('/', (req, res) => res.send(format('hello')));
  app.get('/words', (req, res) => res.json(_.chunk(String(req.query.q ?? '').split(' '), 2)));
  app.get('/ago', (req, res) => res.send(moment(Number(req.query.t ?? 0)).fromNow()));
};
