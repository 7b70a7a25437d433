'use strict';
// The benchmark's app: packaged by npm run bench -- app, never run there.
const express = require('express');
const { format } = require('./lib/format.js');
const { routes } = require('./lib/routes.js');

const app = express();
routes(app, format);
app.listen(Number(process.env.PORT ?? 8080), () => console.log(format('listening')));
