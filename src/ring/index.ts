// The ring: 64-bit tokens, token allocation, the pure membership -> layout builder, and the shared
// table that the main thread and shard workers read.
export * from './hash.js';
export * from './tokens.js';
export * from './builder.js';
export * from './table.js';
