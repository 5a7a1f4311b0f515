export * from './version.js';
export * from './errors.js';
export * from './codec.js';
export * from './records.js';
export * from './ops.js';
export * from './frames.js';
export * from './util.js';
