/**
 * The V8 flags a ringkv node process runs with (issue 12).
 *
 * `--single-threaded-gc`: V8 collects on the thread that allocates instead of with its parallel
 * and concurrent GC helper threads. A node is one main thread and one thread per shard, busy on a
 * machine with few cores; the helper threads (four per process on the 2-core VM) competed with them
 * and cost more CPU than they saved: node CPU per batched write fell 13-20% with the flag (5
 * alternated pairs, bench/README.md "fourth pass").
 *
 * V8 reads these flags when it creates the heap: `v8.setFlagsFromString` afterwards crashes the
 * process, and NODE_OPTIONS refuses this one. So they go on node's command line: bin/ringkv.js's
 * shebang, `npm start`, `ringkv local-cluster`, the benchmark's and the tests' node starts all
 * pass them; a node started without them logs so (`gcFlagsMissing`).
 */
export const NODE_PROCESS_FLAGS: readonly string[] = ['--single-threaded-gc'];

/** The flags this process should have had and lacks (empty when started as above). */
export function gcFlagsMissing(execArgv: readonly string[] = process.execArgv): string[] {
  return NODE_PROCESS_FLAGS.filter((f) => !execArgv.includes(f));
}
