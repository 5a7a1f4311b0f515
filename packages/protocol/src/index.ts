// The published types use Node's (Buffer, EventEmitter): the reference makes a consumer load them without naming them.
/// <reference types="node" preserve="true" />
export * from './version.js';
export * from './errors.js';
export * from './codec.js';
export * from './records.js';
export * from './ops.js';
export * from './frames.js';
export * from './util.js';
export * from './secrets.js';
export * from './capacity.js';
export * from './qmp.js';
