'use strict';
console.log(`hello-minimal listening on ${process.env.PORT}`);
