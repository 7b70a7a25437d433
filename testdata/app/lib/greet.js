'use strict';
exports.greet = () => process.env.GREETING ?? 'hi';
