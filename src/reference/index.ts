export * from './docker-name.js';
export * from './transport.js';
