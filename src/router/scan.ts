/**
 * Range scans in token order: what `SELECT * FROM t WHERE token(key) >= token(?) LIMIT n` does on a
 * hash-partitioned store (YCSB's Cassandra binding runs workload E this way).
 *
 * The pure parts live here: which ring ranges a scan walks (`planScanSegments`), how one round of
 * replica pages of a range is merged (`mergeScanPages`), and the coordination of one scan as a
 * state machine driven by replica callbacks (`ScanCoordination`, in the style of the router's
 * WriteCoordination / ReadCoordination). The router supplies the ports (local shards by message,
 * remote replicas through the peer transport).
 *
 * No read repair for scans: a scan reads R replicas of many keys, and repairing stale ones here
 * would turn a read-mostly workload into writes. Divergence is left to per-key read repair and
 * anti-entropy (Cassandra, too, does not read-repair range reads by default since 4.0).
 */
import type { ConflictMode } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { compareTokens, tokenFromBigInt, tokenToBigInt, type Token } from '../ring/hash.js';
import { REPAIR_LIMITS } from '../storage/shard-protocol.js';
import { decodeStorageKey } from '../storage/keys.js';
import { RingkvError, invariant } from '../util/errors.js';
import { contextOf, decodeRecord, encodeContext, mergeVersions, readableValues, type MergeMode, type Version } from '../versions/index.js';
import type { ConsistencySpec, ResolvedConsistency } from './consistency.js';
import type { ConsistencyReport, Done } from './types.js';

/** Bounds of one scan request. */
export const SCAN_LIMITS = Object.freeze({
  /** Rows one scan may ask for (Cassandra's default page is 5000; YCSB E asks for 1..100). */
  maxLimit: 1000,
  /**
   * Key + value + context bytes one scan answer collects; past it the answer stops early with
   * `truncated` (always at least one row), so a reply stays well under the IPC and peer frame
   * limits (16 MiB by default) whatever the value sizes are.
   */
  maxReplyBytes: 4 * 1024 * 1024,
  /** Extra rows asked of each replica per round, so a few tombstones don't cost another round. */
  pageSlack: 8,
});

export interface ScanRequest {
  table: string;
  /**
   * The scan starts at this key's token: inclusive (`token(key) >= token(start)`), or exclusive
   * with `exclusive`. Absent when `pagingState` continues an earlier scan.
   */
  startKey?: Uint8Array | undefined;
  /** Start strictly after the start key's token (`token(key) > token(start)`). */
  exclusive?: boolean | undefined;
  /** Continue where a previous page stopped (its `pagingState`), up to the end of that scan's ring turn. */
  pagingState?: string | undefined;
  /** Live rows wanted, 1..SCAN_LIMITS.maxLimit. */
  limit: number;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export interface ScanRow {
  /** The partition key (a fresh copy). */
  key: Uint8Array;
  /** Live versions after reconciliation (1 = a value, >1 = siblings); never empty. */
  values: Version[];
  context: string;
}

export interface ScanResult {
  /** In token order (then key order), starting at the start key's token, wrapping the ring at most once. */
  rows: ScanRow[];
  /** True when the scan stopped before `limit` rows because of SCAN_LIMITS.maxReplyBytes: continue after the last row. */
  truncated: boolean;
  /** The scan walked the rest of its turn of the ring: there is no next page. */
  endOfRing: boolean;
  /** Where the next page starts (pass it back as `pagingState`); absent exactly when `endOfRing`. */
  pagingState?: string;
  /** Per ring range: `required` replicas answered every range the scan read. */
  consistency: ConsistencyReport;
}

/** A ring range piece (start, end] that a scan reads, and the ring position whose replicas hold it. */
export interface ScanSegment {
  pos: number;
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
}

/** One replica's answer for a segment: rows in storage-key order, and where to resume (null: segment done). */
export interface ScanPage {
  rows: Array<{ key: Uint8Array; record: Uint8Array }>;
  next: Uint8Array | null;
}

/** A replica scan as it crosses the peer port (the receiver checks the segment lies inside one of its ranges). */
export interface PeerReplicaScan extends Omit<ScanSegment, 'pos'> {
  table: string;
  /** The table's id bytes (tableIdBytes); the receiver checks it against the name. */
  tableId: Uint8Array;
  after: Uint8Array | null;
  limit: number;
}

const RING = 1n << 64n;
const MAX_WORD = 0xffffffff;

function splitToken(b: bigint): { hi: number; lo: number } {
  return tokenFromBigInt(((b % RING) + RING) % RING);
}

/**
 * The segments a scan from `start` walks, in ring order: the rest of the range holding the first
 * token past the scan's lower bound, the following ranges, and the part of the first range before
 * the start, so the ring is covered exactly once. `tokens` are the ring's sorted tokens; range i is
 * (tokens[i-1], tokens[i]] (range 0 wraps; on a one-token ring it is the whole ring).
 *
 * A piece that wraps past 2^64-1 is split there: a shard answers a wrapping range in storage-key
 * order, which puts the tokens after zero before those up to 2^64-1, and the merge and cursor of
 * a round compare storage keys. So every segment is ascending in key order (and in token order).
 */
export function planScanSegments(tokens: readonly Token[], start: Token, exclusive: boolean): ScanSegment[] {
  const n = tokens.length;
  if (n === 0) return [];
  // Lower bound s0 (exclusive) of the token interval the scan covers: (s0, s0] = the whole ring.
  const s0 = scanWalkStart(start, exclusive);
  const first = splitToken(tokenToBigInt(s0) + 1n);
  let pos = 0;
  let a = 0;
  let b = n;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (compareTokens(tokens[m]!, first) < 0) a = m + 1;
    else b = m;
  }
  pos = a === n ? 0 : a;
  const out: ScanSegment[] = [];
  const seg = (p: number, s: Token, e: Token): void => {
    const sIsMax = s.hi === MAX_WORD && s.lo === MAX_WORD;
    if (!sIsMax && compareTokens(s, e) >= 0) {
      // (s, e] wraps (s == e: the whole ring): (s, 2^64-1], then (2^64-1, e] = [0, e].
      out.push({ pos: p, startHi: s.hi, startLo: s.lo, endHi: MAX_WORD, endLo: MAX_WORD });
      out.push({ pos: p, startHi: MAX_WORD, startLo: MAX_WORD, endHi: e.hi, endLo: e.lo });
    } else out.push({ pos: p, startHi: s.hi, startLo: s.lo, endHi: e.hi, endLo: e.lo });
  };
  seg(pos, s0, tokens[pos]!);
  for (let k = 1; k < n; k++) {
    const p = (pos + k) % n;
    seg(p, tokens[(p + n - 1) % n]!, tokens[p]!);
  }
  const prev = tokens[(pos + n - 1) % n]!;
  // The first range's part before the start, unless the scan began at that range's start.
  if (compareTokens(prev, s0) !== 0) seg(pos, prev, s0);
  return out;
}

/**
 * The exclusive lower bound of the token walk of a scan from `start`: the walk covers
 * (walkStart, walkStart] clockwise, i.e. one full turn of the ring, and ends at walkStart.
 */
export function scanWalkStart(start: Token, exclusive: boolean): Token {
  return splitToken(tokenToBigInt(start) - (exclusive ? 0n : 1n));
}

/**
 * Cut a walk of segments (contiguous, in ring order, starting just after `walkStart`) so it ends
 * at token `end` inclusive: the segments wholly past `end` are dropped and the one holding it is
 * shortened. `end == walkStart` keeps the full turn. This is how a continued scan (a paging state)
 * stops where the scan it continues began, after exactly one turn of the ring.
 */
export function clipWalk(segments: readonly ScanSegment[], walkStart: Token, end: Token): ScanSegment[] {
  const w = tokenToBigInt(walkStart);
  const off = (t: Token): bigint => (((tokenToBigInt(t) - w) % RING) + RING) % RING;
  const stop = off(end) === 0n ? RING : off(end);
  const out: ScanSegment[] = [];
  for (const seg of segments) {
    const a = off({ hi: seg.startHi, lo: seg.startLo });
    const b = off({ hi: seg.endHi, lo: seg.endLo }) === 0n ? RING : off({ hi: seg.endHi, lo: seg.endLo });
    invariant(a < b, 'scan walk segments must be contiguous and in ring order');
    if (a >= stop) break;
    if (b <= stop) out.push(seg);
    else {
      out.push({ ...seg, endHi: end.hi, endLo: end.lo });
      break;
    }
  }
  return out;
}

const PAGING_STATE_VERSION = 1;

/**
 * The opaque continuation of a scan: where its turn of the ring ends (the walk start, as tokens),
 * and the last row returned (its key: the next page resumes strictly after its storage key).
 * base64url of [version][walk end: 8 bytes][last key]. Storage-independent: the cursor is
 * recomputed from the key, so a paging state survives ring changes.
 */
export function encodePagingState(walkEnd: Token, lastKey: Uint8Array): string {
  const b = Buffer.allocUnsafe(9 + lastKey.length);
  b[0] = PAGING_STATE_VERSION;
  b.writeUInt32BE(walkEnd.hi, 1);
  b.writeUInt32BE(walkEnd.lo, 5);
  b.set(lastKey, 9);
  return b.toString('base64url');
}

export function decodePagingState(s: string, maxKeyBytes: number): { walkEnd: Token; lastKey: Buffer } {
  const bad = (why: string): RingkvError => new RingkvError('bad_request', `pagingState is not one a scan returned (${why})`, { field: 'pagingState' });
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]+$/.test(s)) throw bad('not base64url');
  const b = Buffer.from(s, 'base64url');
  if (b.length < 10) throw bad('too short');
  if (b[0] !== PAGING_STATE_VERSION) throw bad(`version ${b[0]}`);
  if (b.length - 9 > maxKeyBytes) throw bad('its key is over the key size limit');
  return { walkEnd: { hi: b.readUInt32BE(1), lo: b.readUInt32BE(5) }, lastKey: b.subarray(9) };
}

/**
 * Is the segment (s, e] inside the ring range (prev, end]? (prev == end: the whole ring.) A replica
 * checks this before scanning for a peer, so a coordinator with another ring view gets an error
 * rather than rows of ranges this node does not hold.
 */
export function segmentWithinRange(prev: Token, end: Token, s: Token, e: Token): boolean {
  const p = tokenToBigInt(prev);
  const off = (t: Token): bigint => (((tokenToBigInt(t) - p) % RING) + RING) % RING;
  const span = off(end) === 0n ? RING : off(end);
  const ds = off(s);
  const de = off(e) === 0n ? RING : off(e);
  return ds < de && de <= span;
}

/** A merged key of one round: its storage key and every version the answering replicas hold. */
export interface MergedScanRow {
  key: Uint8Array;
  versions: Version[];
}

/**
 * Merge one round of replica pages of a segment. A replica whose page is not done has examined
 * keys only up to its `next`; beyond the smallest such `next` another replica's rows would be
 * reconciled without that replica's versions, so rows past it are left for the next round, which
 * resumes there (`bound`; null: every replica finished the segment). Each key's versions are
 * reconciled with the read path's merge (tombstones included: the caller drops dead winners).
 */
export function mergeScanPages(mode: MergeMode, pages: readonly ScanPage[], maxSiblings: number): { rows: MergedScanRow[]; bound: Uint8Array | null } {
  let bound: Uint8Array | null = null;
  for (const p of pages) if (p.next !== null && (bound === null || Buffer.compare(p.next, bound) < 0)) bound = p.next;
  const all: Array<{ key: Uint8Array; record: Uint8Array }> = [];
  for (const p of pages) for (const r of p.rows) if (bound === null || Buffer.compare(r.key, bound) <= 0) all.push(r);
  all.sort((x, y) => Buffer.compare(x.key, y.key));
  const rows: MergedScanRow[] = [];
  for (const r of all) {
    const versions = decodeRecord(r.record);
    const last = rows[rows.length - 1];
    if (last !== undefined && Buffer.compare(last.key, r.key) === 0) last.versions = mergeVersions(mode, last.versions, versions, maxSiblings);
    else rows.push({ key: r.key, versions: mergeVersions(mode, [], versions, maxSiblings) });
  }
  return { rows, bound };
}

/** Check a replica's page before trusting it: ascending keys past the cursor, bin records, bounded size. */
export function checkScanPage(page: unknown, after: Uint8Array | null, limit: number): ScanPage {
  const p = page as Partial<ScanPage> | null;
  if (p === null || typeof p !== 'object' || !Array.isArray(p.rows)) throw new RingkvError('internal', 'scan page without rows');
  if (p.rows.length > limit) throw new RingkvError('internal', `scan page of ${p.rows.length} rows, ${limit} asked for`);
  let prev = after;
  for (const r of p.rows as unknown[]) {
    const row = r as { key?: unknown; record?: unknown } | null;
    if (!row || !(row.key instanceof Uint8Array) || !(row.record instanceof Uint8Array)) throw new RingkvError('internal', 'scan page row without key and record bytes');
    if (prev !== null && Buffer.compare(row.key, prev) <= 0) throw new RingkvError('internal', 'scan page rows are not ascending past the cursor');
    prev = row.key;
  }
  const next = p.next ?? null;
  if (next !== null && !(next instanceof Uint8Array)) throw new RingkvError('internal', 'scan page cursor is not bytes');
  if (next !== null && prev !== null && Buffer.compare(next, prev) < 0) throw new RingkvError('internal', 'scan page cursor is behind its last row');
  return { rows: p.rows, next };
}

/** A replica as the scan coordination sees it. */
export interface ScanReplica {
  nodeId: string;
  local: boolean;
}

/** What a scan coordination reaches of the router. Callbacks run once, never inside the call. */
export interface ScanPorts<R extends ScanReplica> {
  log(): Logger;
  maxSiblings(): number;
  /** The preference list of ring position `pos`, in order. */
  replicasAt(pos: number): readonly R[];
  isUp(r: R): boolean;
  scanReplica(r: R, seg: ScanSegment, after: Uint8Array | null, limit: number, timeoutMs: number, cb: (err: Error | null, page: ScanPage | null) => void): void;
  /** Counted in the router's `unavailable` / `timeouts`. */
  onUnavailable(timedOut: boolean): void;
}

/**
 * One coordinated scan. Segment by segment (see planScanSegments), it asks R up replicas of the
 * segment's range (local first) for a page after the cursor, merges the pages (mergeScanPages),
 * keeps the live rows, and moves the cursor to the round's bound, until `limit` live rows, the byte
 * bound, or the end of the ring. A replica that fails is replaced by another up replica of the
 * range for the rest of the segment; with none left the scan fails `unavailable`, naming how many
 * answered. One deadline covers the whole scan.
 */
export class ScanCoordination<R extends ScanReplica> {
  private seg = -1;
  private cursor: Uint8Array | null = null;
  private readonly rows: ScanRow[] = [];
  private bytes = 0;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly deadline: number;
  private round = 0;
  private chosen: R[] = [];
  private spares: R[] = [];
  private pages: Array<ScanPage | undefined> = [];
  private waiting = 0;
  private failedInSegment = 0;

  constructor(
    private readonly p: ScanPorts<R>,
    private readonly mode: MergeMode,
    private readonly segments: readonly ScanSegment[],
    private readonly cons: ResolvedConsistency,
    private readonly limit: number,
    private readonly timeoutMs: number,
    private readonly done: Done<ScanResult>,
    /** Resume strictly after this storage key in the first segment (a continued scan), else null. */
    private readonly firstCursor: Uint8Array | null = null,
  ) {
    invariant(Number.isInteger(limit) && limit >= 1 && limit <= SCAN_LIMITS.maxLimit, `scan limit ${limit} out of bounds`);
    invariant(cons.required >= 1 && cons.required <= cons.n, 'scan needs 1 <= R <= N');
    this.deadline = Date.now() + timeoutMs;
  }

  start(): void {
    this.timer = setTimeout(() => this.onDeadline(), this.timeoutMs);
    this.nextSegment();
  }

  private onDeadline(): void {
    if (this.settled) return;
    const s = this.segments[this.seg];
    this.fail(true, `scan deadline passed after ${this.rows.length} rows, in the range at ring position ${s?.pos ?? '?'}: ${this.answered()} of ${this.cons.required} required replicas answered`);
  }

  private answered(): number {
    return this.pages.filter((x) => x !== undefined).length;
  }

  private fail(timedOut: boolean, message: string): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.p.onUnavailable(timedOut);
    this.done(new RingkvError(timedOut ? 'timeout' : 'unavailable', message, { n: this.cons.n, required: this.cons.required, rows: this.rows.length }), undefined);
  }

  private finish(truncated: boolean, endOfRing: boolean): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    const consistency: ConsistencyReport = { n: this.cons.n, required: this.cons.required, replied: this.cons.required };
    if (this.cons.clamped) consistency.clamped = this.cons.clamped;
    invariant(endOfRing || this.rows.length > 0, 'a scan stops before the end of its walk only after a row');
    this.done(null, { rows: this.rows, truncated, endOfRing, consistency });
  }

  private nextSegment(): void {
    if (++this.seg >= this.segments.length) return this.finish(false, true);
    const s = this.segments[this.seg]!;
    const targets = this.p.replicasAt(s.pos).slice(0, this.cons.n);
    const up = targets.filter((r) => this.p.isUp(r)).sort((a, b) => Number(b.local) - Number(a.local));
    this.failedInSegment = targets.length - up.length;
    this.pages = [];
    if (up.length < this.cons.required) {
      return this.fail(false, `scan quorum not met for the range at ring position ${s.pos}: ${up.length} of ${this.cons.n} replicas are up, ${this.cons.required} replies required`);
    }
    this.chosen = up.slice(0, this.cons.required);
    this.spares = up.slice(this.cons.required);
    this.cursor = this.seg === 0 ? this.firstCursor : null;
    this.sendRound();
  }

  private sendRound(): void {
    const round = ++this.round;
    const need = this.limit - this.rows.length;
    const pageLimit = Math.min(REPAIR_LIMITS.maxScanPage, need + SCAN_LIMITS.pageSlack);
    this.pages = new Array<ScanPage | undefined>(this.chosen.length);
    this.waiting = this.chosen.length;
    for (let i = 0; i < this.chosen.length; i++) this.ask(i, round, pageLimit);
  }

  private ask(slot: number, round: number, pageLimit: number): void {
    const r = this.chosen[slot]!;
    const after = this.cursor;
    const remaining = Math.max(1, this.deadline - Date.now());
    this.p.scanReplica(r, this.segments[this.seg]!, after, pageLimit, remaining, (err, page) => {
      if (this.settled || round !== this.round) return;
      let checked: ScanPage | null = null;
      if (!err) {
        try {
          checked = checkScanPage(page, after, pageLimit);
        } catch (e) {
          err = e as Error;
        }
      }
      if (err || checked === null) {
        this.failedInSegment++;
        this.p.log().debug({ err: String(err), replica: r.nodeId }, 'replica scan failed');
        const spare = this.spares.shift();
        if (spare === undefined) {
          const s = this.segments[this.seg]!;
          return this.fail(
            false,
            `scan quorum not met for the range at ring position ${s.pos}: ${this.answered()} of ${this.cons.required} required replicas answered (${this.failedInSegment} failed or down; last: ${err?.message ?? 'no page'})`,
          );
        }
        this.chosen[slot] = spare;
        return this.ask(slot, round, pageLimit);
      }
      this.pages[slot] = checked;
      if (--this.waiting === 0) this.mergeRound();
    });
  }

  private mergeRound(): void {
    const pages = this.pages as ScanPage[];
    let merged: ReturnType<typeof mergeScanPages>;
    try {
      merged = mergeScanPages(this.mode, pages, this.p.maxSiblings());
    } catch (e) {
      // A record no replica should have produced: fail the scan rather than skip data silently.
      return this.fail(false, `scan could not reconcile replica records: ${(e as Error).message}`);
    }
    const nowUs = Date.now() * 1000;
    for (const m of merged.rows) {
      const values = readableValues(m.versions, nowUs);
      if (values.length === 0) continue; // deleted (its winner is a tombstone) or expired
      const key = Buffer.from(decodeStorageKey(m.key).partitionKey);
      const context = encodeContext(contextOf(m.versions));
      let size = key.length + context.length;
      for (const v of values) size += v.value.length;
      if (this.rows.length > 0 && this.bytes + size > SCAN_LIMITS.maxReplyBytes) return this.finish(true, false);
      this.rows.push({ key, values, context });
      this.bytes += size;
      if (this.rows.length >= this.limit) return this.finish(false, false);
    }
    if (merged.bound === null) return this.nextSegment();
    // Every replica's cursor moved past ours, so the bound did too: no round repeats itself.
    invariant(this.cursor === null || Buffer.compare(merged.bound, this.cursor) > 0, 'scan round made no progress');
    this.cursor = merged.bound;
    this.sendRound();
  }
}
