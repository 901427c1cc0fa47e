/** Benchmark harness: workloads, the open/closed-loop driver, reports and the RocksDB baseline. */
export * from './distributions.js';
export * from './workloads.js';
export * from './histogram.js';
export * from './target.js';
export * from './driver.js';
export * from './report.js';
export * from './rocksdb-target.js';
