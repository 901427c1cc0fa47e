#!/usr/bin/env -S node --single-threaded-gc
// The flag: src/cli/process-flags.ts (why, and every other place a node starts).
// The installed entry point: runs the compiled CLI (built by `npm install` via the `prepare` script).
import '../dist/src/cli/main.js';
