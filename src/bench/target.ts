/**
 * The contract every system under test implements, so the same driver and the same op
 * stream can be pointed at ringkv (over IPC/HTTP) and at the storage-engine baseline.
 */

/** One result per item: `null` = ok, otherwise a short error kind ('timeout', 'unavailable', 'overloaded', …). */
export type OpResult = string | null;

export interface PutItem {
  key: string;
  value: Uint8Array;
}

export interface BenchTarget {
  readonly name: string;
  /**
   * Batched so ingest can be batched and pipelined; one result per item, in order. `lane`: which
   * of the target's connections to use (the driver gives each closed-loop worker its own, so
   * `--connections C --concurrency C` is one call in flight per connection); targets with one
   * connection ignore it.
   */
  put(items: ReadonlyArray<PutItem>, lane?: number): Promise<OpResult[]>;
  /** One result per key; a missing key is NOT an error (reads of absent keys are legitimate load). */
  get(keys: readonly string[], lane?: number): Promise<OpResult[]>;
  /** Read up to `count` records from `startKey` onwards; optional because not every target orders keys. */
  scan?(startKey: string, count: number): Promise<OpResult>;
  close(): Promise<void>;
}
