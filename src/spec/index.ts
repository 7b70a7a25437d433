export * from './media-types.js';
export * from './types.js';
export * from './parse.js';
export * from './platform.js';
