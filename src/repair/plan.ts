/**
 * Pure decisions of anti-entropy repair (no I/O, no clock reads): which token sub-ranges a set of
 * Merkle leaves covers, which keys two replicas disagree on, and, once both sides' versions are in
 * hand, which side must receive what. The repair service and the shard actor do the I/O around it.
 *
 * Worker-safe: the shard actor imports `leafTokenRuns` to list the keys of given leaves.
 */
import type { TableMode } from '../config/config.js';
import type { Hash64 } from '../merkle/index.js';
import { tableIdOfStorageKey } from '../storage/keys.js';
import { isPurgeableRecord, mergeStoredRecords, sameRecord } from '../storage/records.js';

const TWO_64 = 1n << 64n;
const U64_MASK = TWO_64 - 1n;

function toBig(h: Hash64): bigint {
  return (BigInt(h.hi >>> 0) << 32n) | BigInt(h.lo >>> 0);
}

function fromBig(b: bigint): Hash64 {
  return { hi: Number((b >> 32n) & 0xffffffffn), lo: Number(b & 0xffffffffn) };
}

/** A run of consecutive leaves as one ring sub-range (start, end]; start == end is the whole ring. */
export interface LeafRun {
  firstLeaf: number;
  lastLeaf: number;
  start: Hash64;
  end: Hash64;
}

/**
 * The token sub-ranges covered by `leaves` of a depth-`depth` tree over ring range (start, end],
 * matching `leafIndex` exactly: leaf i holds offsets o = token - start - 1 with
 * floor(o * 2^depth / width) = i, i.e. o in [ceil(i * width / 2^depth), ceil((i+1) * width / 2^depth)),
 * i.e. tokens (start + firstOff(i), start + firstOff(i+1)]. Consecutive leaves are merged into one
 * run (fewer iterator seeks); leaves holding no token at all (width < 2^depth) are dropped, because
 * an empty (s, s] would otherwise read as "the whole ring".
 *
 * `leaves` must be strictly ascending, within [0, 2^depth).
 */
export function leafTokenRuns(start: Hash64, end: Hash64, depth: number, leaves: readonly number[]): LeafRun[] {
  if (!Number.isInteger(depth) || depth < 1 || depth > 20) throw new RangeError(`leafTokenRuns: bad depth ${depth}`);
  const count = 2 ** depth;
  for (let k = 0; k < leaves.length; k++) {
    const l = leaves[k]!;
    if (!Number.isInteger(l) || l < 0 || l >= count) throw new RangeError(`leafTokenRuns: leaf ${l} outside [0, ${count})`);
    if (k > 0 && l <= leaves[k - 1]!) throw new RangeError('leafTokenRuns: leaves must be strictly ascending');
  }
  const s = toBig(start);
  let width = (toBig(end) - s) & U64_MASK;
  if (width === 0n) width = TWO_64;
  const D = BigInt(depth);
  const firstOff = (i: number): bigint => (BigInt(i) * width + (1n << D) - 1n) >> D;
  const runs: LeafRun[] = [];
  let k = 0;
  while (k < leaves.length) {
    const a = leaves[k]!;
    let b = a;
    while (k + 1 < leaves.length && leaves[k + 1] === b + 1) {
      k++;
      b++;
    }
    k++;
    const lo = firstOff(a);
    const hi = firstOff(b + 1);
    if (lo === hi) continue;
    runs.push({ firstLeaf: a, lastLeaf: b, start: fromBig((s + lo) & U64_MASK), end: fromBig((s + hi) & U64_MASK) });
  }
  return runs;
}

/** One (storage key, record digest) pair as listed from a Merkle leaf. */
export interface KeyDigest {
  key: Uint8Array;
  hi: number;
  lo: number;
}

export interface DigestDiff {
  /** Present on both sides with different digests: fetch both and merge. */
  both: Uint8Array[];
  /** Only the local side has it: fetch local, ship to the peer. */
  onlyLocal: Uint8Array[];
  /** Only the peer has it: fetch from the peer, store locally. */
  onlyRemote: Uint8Array[];
  /** Keys compared (union of both lists). */
  compared: number;
}

function keyString(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}

/** Keys whose digests differ or that one side lacks. Duplicate keys in one list are a caller bug. */
export function diffKeyDigests(local: readonly KeyDigest[], remote: readonly KeyDigest[]): DigestDiff {
  const mine = new Map<string, KeyDigest>();
  for (const e of local) {
    const s = keyString(e.key);
    if (mine.has(s)) throw new Error('invariant violated: duplicate key in the local leaf listing');
    mine.set(s, e);
  }
  const out: DigestDiff = { both: [], onlyLocal: [], onlyRemote: [], compared: mine.size };
  const seen = new Set<string>();
  for (const e of remote) {
    const s = keyString(e.key);
    if (seen.has(s)) throw new Error('invariant violated: duplicate key in the remote leaf listing');
    seen.add(s);
    const m = mine.get(s);
    if (m === undefined) {
      out.onlyRemote.push(e.key);
      out.compared++;
    } else if (m.hi !== e.hi || m.lo !== e.lo) out.both.push(m.key);
  }
  for (const [s, e] of mine) if (!seen.has(s)) out.onlyLocal.push(e.key);
  return out;
}

/** Table id of a storage key as hex (TableDef.id), for the policy's lookups. */
export function tableIdHexOfStorageKey(key: Uint8Array): string {
  return tableIdOfStorageKey(key).toString('hex');
}

/** What both sides store for one key (record bytes, either family); null = absent there (or not fetched because known absent). */
export interface KeyState {
  key: Uint8Array;
  local: Uint8Array | null;
  remote: Uint8Array | null;
}

export interface RepairPolicy {
  /** The table's merge mode (by hex table id); undefined = unknown table (its keys are left alone). */
  modeOf(tableId: string): TableMode | undefined;
  /** Whether this table's keys belong on this node / on the peer (table N vs position in the pref list). */
  localMayStore(tableId: string): boolean;
  remoteMayStore(tableId: string): boolean;
  /** The table's gc grace (a wide-column table may set its own), in seconds. */
  graceSecondsOf(tableId: string): number;
  maxSiblings: number;
  nowMs: number;
}

export interface KeyAction {
  key: Uint8Array;
  /** Hex, as TableDef.id. */
  tableId: string;
  mode: TableMode;
  /** The merged record to store (the receiving shard merges it again: idempotent). */
  record: Uint8Array;
}

export interface RepairPlan {
  toLocal: KeyAction[];
  toRemote: KeyAction[];
  /** Keys of tables this node does not know (no merge mode): left for a later session. */
  unknownTable: number;
  /**
   * Keys one side lacks while the other holds only tombstones past the grace period: the lacking
   * side has most likely purged them already, and shipping them back would only re-create a
   * tombstone the next sweep deletes again (and keep the trees disagreeing meanwhile).
   */
  purgeable: number;
  /** Both sides already equal (the listing raced a write that made them so). */
  equal: number;
}

/**
 * Decide, per key, what each side must receive: merge both sides with the table's mode (the shared
 * record merge, storage/records.ts) and send the merge to whichever side does not already hold
 * exactly it. A tombstone is a record like any other (a version, or a cell, row, range or
 * partition deletion), so a delete one replica missed flows to it and wins the merge where it
 * covers the stale value: repair within the grace period cannot resurrect a deleted value.
 */
export function planKeyRepairs(states: readonly KeyState[], policy: RepairPolicy): RepairPlan {
  const plan: RepairPlan = { toLocal: [], toRemote: [], unknownTable: 0, purgeable: 0, equal: 0 };
  for (const st of states) {
    const tableId = tableIdHexOfStorageKey(st.key);
    const mode = policy.modeOf(tableId);
    if (mode === undefined) {
      plan.unknownTable++;
      continue;
    }
    const { local, remote } = st;
    if (local === null && remote === null) {
      plan.equal++;
      continue;
    }
    if ((local === null || remote === null) && isPurgeableRecord((local ?? remote)!, policy.nowMs, policy.graceSecondsOf(tableId))) {
      plan.purgeable++;
      continue;
    }
    const merged = remote === null ? local! : mergeStoredRecords(mode, local ?? undefined, remote, policy.maxSiblings);
    const localStale = local === null || !sameRecord(merged, local);
    const remoteStale = remote === null || !sameRecord(merged, remote);
    if (!localStale && !remoteStale) {
      plan.equal++;
      continue;
    }
    if (localStale && policy.localMayStore(tableId)) plan.toLocal.push({ key: st.key, tableId, mode, record: merged });
    if (remoteStale && policy.remoteMayStore(tableId)) plan.toRemote.push({ key: st.key, tableId, mode, record: merged });
  }
  return plan;
}

/** Split `items` into consecutive batches of at most `maxCount` items and (roughly) `maxBytes`. */
export function batchBySize<T>(items: readonly T[], size: (t: T) => number, maxCount: number, maxBytes: number): T[][] {
  if (!(maxCount >= 1) || !(maxBytes >= 1)) throw new RangeError('batchBySize: limits must be >= 1');
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const b = size(it);
    // An item larger than the budget still goes alone: refusing it would stall repair forever.
    if (cur.length > 0 && (cur.length >= maxCount || bytes + b > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
