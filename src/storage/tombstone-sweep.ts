/**
 * The tombstone sweep of a shard actor: purge records whose versions are all tombstones older than
 * their table's grace (gcGraceSeconds), and the dead-record index that lets a sweep visit only
 * those records instead of the whole column family.
 *
 * The actor runs one chunk per turn (its mailbox keeps draining in between) and supplies the ports:
 * reads, the purge (one batch, with its Merkle patches and counters), the record predicates.
 * Worker-safe: no imports with side effects; nothing here touches RocksDB or a thread.
 */
import type { SweepStats } from './shard-protocol.js';

/**
 * Dead-record index: storage keys (latin1) whose stored versions are all tombstones, the only
 * records the sweep may purge. Every commit keeps it current for the keys it writes; the first
 * sweep, started with the shard, is a full scan that fills in what was stored before. Once
 * `complete`, sweeps visit only these keys (a full scan of 500k keys costs seconds of CPU, which a
 * periodic sweep on every shard turned into a slow patch each minute). Bounded: past `maxEntries`
 * it is dropped and sweeps scan everything until a full scan fits again.
 */
export class DeadRecordIndex {
  private readonly keys = new Set<string>();
  private completeFlag = false;
  /** Bumped whenever the index overflows, so a full scan that saw an overflow does not call it complete. */
  private overflowCount = 0;

  constructor(readonly maxEntries: number) {}

  get complete(): boolean {
    return this.completeFlag;
  }

  get overflows(): number {
    return this.overflowCount;
  }

  get size(): number {
    return this.keys.size;
  }

  /** Keep the index current for a key whose stored record changed (or was read whole). */
  note(key: Buffer, dead: boolean): void {
    // A live record with nothing indexed (ingest, most writes) needs no key string.
    if (!dead && this.keys.size === 0) return;
    const k = key.toString('latin1');
    if (!dead) {
      this.keys.delete(k);
      return;
    }
    if (this.keys.size >= this.maxEntries && !this.keys.has(k)) {
      // Too many to track: forget them all; sweeps scan everything until a full scan fits again.
      this.keys.clear();
      this.completeFlag = false;
      this.overflowCount++;
      return;
    }
    this.keys.add(k);
  }

  /** The key's record is gone (purged, cleaned up). */
  forget(key: Buffer): void {
    this.keys.delete(key.toString('latin1'));
  }

  /**
   * A copy of the keys (latin1 strings), for a sweep run (keys that die during the run are the next
   * run's). Kept as strings: the run makes Buffers one chunk at a time, not 200k in one turn.
   */
  snapshot(): string[] {
    return Array.from(this.keys);
  }

  /** A full scan that began at `overflowsAtStart` saw every stored record: exact unless it overflowed meanwhile. */
  fullScanDone(overflowsAtStart: number): void {
    if (this.overflowCount === overflowsAtStart) this.completeFlag = true;
  }
}

export interface SweepPorts {
  /** The next chunk of (key, record) rows of the whole column family after `after`, flattened. */
  readChunk(after: Buffer | null, limit: number): Buffer[];
  /** The stored records of `keys` (undefined: absent). */
  getMany(keys: Buffer[]): Array<Buffer | undefined>;
  /** Are all of the record's versions tombstones? (May throw on an unreadable record.) */
  isCandidate(record: Buffer): boolean;
  /** Is the dead record past its table's grace at `nowMs`? (May throw.) */
  isPurgeable(key: Buffer, record: Buffer, nowMs: number): boolean;
  /** Delete these (key, stored record) rows in one batch, patching trees and counters. */
  purge(rows: ReadonlyArray<readonly [Buffer, Buffer]>): void;
  nowMs(): number;
}

/** Rows examined per chunk (one turn of the actor). */
export const SWEEP_CHUNK = 2000;

/** One sweep: over the dead-record index when it is complete, else a full scan that completes it. */
export class SweepRun {
  private cursor: Buffer | null = null;
  private readonly indexed: boolean;
  private readonly candidates: string[];
  private next = 0;
  private readonly overflowsAtStart: number;
  private scanned = 0;
  private purged = 0;
  private readonly t0 = performance.now();

  constructor(
    /** Control-op ids answered when the run ends (none for a periodic run). */
    readonly waiters: number[],
    private readonly index: DeadRecordIndex,
    private readonly chunk = SWEEP_CHUNK,
  ) {
    this.indexed = index.complete;
    this.candidates = this.indexed ? index.snapshot() : [];
    this.overflowsAtStart = index.overflows;
  }

  /** The next chunk of (key, record) rows: index candidates, or the column family in order. */
  private rowsOf(ports: SweepPorts): { rows: Buffer[]; more: boolean } {
    if (!this.indexed) {
      const rows = ports.readChunk(this.cursor, this.chunk);
      if (rows.length > 0) this.cursor = rows[rows.length - 2]!;
      return { rows, more: rows.length / 2 === this.chunk };
    }
    const keys = this.candidates.slice(this.next, this.next + this.chunk).map((k) => Buffer.from(k, 'latin1'));
    this.next += keys.length;
    const values = keys.length > 0 ? ports.getMany(keys) : [];
    const rows: Buffer[] = [];
    for (let i = 0; i < keys.length; i++) {
      const v = values[i];
      if (v === undefined) this.index.forget(keys[i]!); // gone (purged meanwhile)
      else rows.push(keys[i]!, v);
    }
    return { rows, more: this.next < this.candidates.length };
  }

  /** One chunk; true while there is more to examine. */
  step(ports: SweepPorts): boolean {
    const { rows, more } = this.rowsOf(ports);
    const nowMs = ports.nowMs();
    const doomed: Array<[Buffer, Buffer]> = [];
    for (let j = 0; j < rows.length; j += 2) {
      this.scanned++;
      const key = rows[j]!;
      const record = rows[j + 1]!;
      let dead: boolean;
      let purgeable: boolean;
      try {
        dead = ports.isCandidate(record);
        purgeable = dead && ports.isPurgeable(key, record, nowMs);
      } catch {
        continue; // never delete what we cannot read
      }
      this.index.note(key, dead);
      if (purgeable) doomed.push([key, record]);
    }
    if (doomed.length > 0) {
      ports.purge(doomed);
      for (const [k] of doomed) this.index.forget(k);
      this.purged += doomed.length;
    }
    // A full scan saw every stored record and noted each dead one: from now on the index is exact.
    if (!more && !this.indexed) this.index.fullScanDone(this.overflowsAtStart);
    return more;
  }

  stats(): SweepStats {
    return { scanned: this.scanned, purged: this.purged, durationMs: Math.round(performance.now() - this.t0), indexed: this.indexed };
  }
}
