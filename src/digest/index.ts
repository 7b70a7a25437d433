export * from './digest.js';
export * from './verify.js';
