/**
 * The repair protocol's types: what a session reports, the peer messages of a session (answered by
 * the peer's local replica side, local-replica.ts) and their checks, range references.
 */
import type { TableMode } from '../config/config.js';
import type { Hash64 } from '../merkle/index.js';
import { MIN_STORAGE_KEY_BYTES } from '../storage/keys.js';
import { REPAIR_LIMITS, type LeafCursor, type RangeRef, type SweepStats } from '../storage/shard-protocol.js';
import { RingkvError } from '../util/errors.js';

export interface RepairReport {
  /** The table whose keys were streamed, or null for all tables. */
  table: string | null;
  /** Peers whose trees were compared. */
  peers: string[];
  /** (range, peer) pairs whose roots were compared. */
  rangesCompared: number;
  rangesDiffered: number;
  /** Pairs left out: a tree mid-rebuild, a peer down, or a peer with another ring view. */
  rangesSkipped: number;
  /** Tree node pairs compared (an identical range costs 1: its root). */
  hashesCompared: number;
  /** Keys whose (key, digest) entries were compared (in differing leaves only). */
  keysCompared: number;
  /** Keys whose merged versions were written to a peer / to this node. */
  keysSent: number;
  keysReceived: number;
  /** Keys left alone: unknown table, or tombstones past the grace period on one side only. */
  keysSkipped: number;
  /** msgpack bytes of every request this session sent / of every answer it received. */
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /** The first few failures (bounded), for operators. */
  errors: string[];
}

export interface RangeInfo {
  start: string;
  end: string;
  replicas: string[];
  root: string;
  /** False while the tree is rebuilt after a start or a ring change. */
  ready: boolean;
}

export interface GcReport {
  scanned: number;
  purged: number;
  durationMs: number;
  shards: Array<SweepStats & { shard: number }>;
}

/** Where the running repair session is, and how the last one ended (dashboard, metrics). */
export interface RepairProgress {
  running: boolean;
  /** Wall-clock ms the running (or last) session started; null if none ran yet. */
  startedAt: number | null;
  /** (range, peer) pairs the running (or last) session planned, and how many it has finished. */
  pairsTotal: number;
  pairsDone: number;
  /** Sessions finished since start, and those that failed as a whole. */
  sessions: number;
  failedSessions: number;
  /** The last finished session's report (null before the first). */
  last: RepairReport | null;
  /** Sums over every finished session since start. */
  totals: { keysSent: number; keysReceived: number; bytesSent: number; bytesReceived: number; rangesDiffered: number };
}

/** Peer messages of the repair protocol (answered by the peer's RepairService). */
export type RepairPeerMessage =
  | { t: 'repair-roots'; digest: string }
  | { t: 'repair-nodes'; digest: string; range: RangeRef; level: number; indexes: number[] }
  | { t: 'repair-keys'; digest: string; range: RangeRef; leaves: number[]; table: Uint8Array | null; cursor: NodeLeafCursor | null }
  | { t: 'repair-fetch'; keys: Uint8Array[] }
  | { t: 'repair-push'; entries: Array<{ key: Uint8Array; mode: TableMode; record: Uint8Array }> };

/**
 * Where a listing of some leaves' keys stopped on a node: the shard being listed (they are walked
 * in order 0..S-1) and that shard's own cursor.
 */
export interface NodeLeafCursor extends LeafCursor {
  shard: number;
}

/** One node-level page of (key, digest) entries of some leaves. */
export interface NodeLeafPage {
  ready: boolean;
  entries: Array<{ key: Uint8Array; hi: number; lo: number }>;
  next: NodeLeafCursor | null;
}

/** A tree (here or on the peer) is still being rebuilt: the range is skipped this session. */
export class NotReady extends Error {}

export function hex(h: Hash64): string {
  return h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
}

export function refOf(r: RangeRef): RangeRef {
  return { pos: r.pos, startHi: r.startHi, startLo: r.startLo, endHi: r.endHi, endLo: r.endLo };
}

export function sameRef(a: RangeRef, b: RangeRef): boolean {
  return a.pos === b.pos && a.startHi === b.startHi && a.startLo === b.startLo && a.endHi === b.endHi && a.endLo === b.endLo;
}

export function asObj(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new RingkvError('bad_request', `${what} must be an object`);
  return x as Record<string, unknown>;
}

export function asRangeRef(x: unknown): RangeRef {
  const o = asObj(x, 'range');
  const r = { pos: o['pos'], startHi: o['startHi'], startLo: o['startLo'], endHi: o['endHi'], endLo: o['endLo'] };
  for (const [k, v] of Object.entries(r)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RingkvError('bad_request', `range.${k} must be a uint32`);
  }
  return r as RangeRef;
}

export function asKeys(x: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(x) || x.length > REPAIR_LIMITS.maxKeysPerOp) throw new RingkvError('bad_request', `${what} must be an array of at most ${REPAIR_LIMITS.maxKeysPerOp} keys`);
  for (const k of x) if (!(k instanceof Uint8Array) || k.length < MIN_STORAGE_KEY_BYTES) throw new RingkvError('bad_request', `${what}: every key must be a storage key (bytes)`);
  return x as Uint8Array[];
}
