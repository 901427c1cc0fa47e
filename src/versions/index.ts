/**
 * Versioning and conflict resolution (pure, worker-thread safe).
 * Call `await initVersions()` once per thread before `recordDigest`/`hash64`.
 */
export * from './vclock.js';
export * from './version.js';
export * from './reconcile.js';
export * from './record.js';
