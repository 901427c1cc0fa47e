/**
 * The pure parts of range streaming: the per-source throttle, batch checksums and validation,
 * progress persistence and resumption, the mover's cursor / failover logic over fake ports, and
 * the pending intervals the ring table publishes for shards.
 */
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { initHasher, tokenFromBigInt, tokenToBigInt, tokenToHex, type Token } from '../../src/ring/hash.js';
import { RingTable, toPendingIntervals, NOT_STORED, PENDING, Liveness } from '../../src/ring/table.js';
import { buildRing } from '../../src/ring/builder.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { decodeBatch, encodeBatch, STREAM_LIMITS, type StreamRow } from '../../src/streaming/batch.js';
import { mergeSourcePages, runTasks, StallError, type FetchedPage, type MoverPorts } from '../../src/streaming/mover.js';
import { resumeTasks, summarize, taskFraction, taskProgressOf, type MovementRecord, type TaskProgress } from '../../src/streaming/progress.js';
import { ByteThrottle } from '../../src/streaming/throttle.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';

beforeAll(async () => {
  await initHasher();
});

const TWO64 = 1n << 64n;
const TABLE = Buffer.alloc(16, 7);
const quiet = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Logger;

function keyAt(t: bigint, name: string): Buffer {
  const tok = tokenFromBigInt(t);
  return encodeStorageKey(tok.hi, tok.lo, TABLE, Buffer.from(name));
}

describe('ByteThrottle', () => {
  it('never lets more than burst + rate x time + one batch through, and keeps the rate when saturated', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 10_000_000 }), fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 200 }), (rate, batches) => {
        const burst = 100_000;
        let now = 0;
        const th = new ByteThrottle(rate, burst, now);
        let sent = 0;
        let biggest = 0;
        for (const b of batches) {
          now += th.waitMs(now);
          th.consume(b, now);
          sent += b;
          biggest = Math.max(biggest, b);
          expect(sent).toBeLessThanOrEqual(burst + (rate * now) / 1000 + biggest + 1);
        }
      }),
    );
    // Saturated: 100 batches of 64 KiB at 1 MiB/s take ~6.25 s minus the burst's worth.
    const th = new ByteThrottle(1024 * 1024, 64 * 1024, 0);
    let now = 0;
    for (let i = 0; i < 100; i++) {
      now += th.waitMs(now);
      th.consume(64 * 1024, now);
    }
    expect(now / 1000).toBeGreaterThan(6.0);
    expect(now / 1000).toBeLessThan(6.3);
  });
});

describe('stream batches', () => {
  const rows: StreamRow[] = [
    { key: keyAt(10n, 'a'), record: Buffer.from('record-a') },
    { key: keyAt(20n, 'b'), record: Buffer.from('record-b') },
  ];

  it('round-trip through msgpack with the checksum intact', () => {
    const wire = unpack(pack(encodeBatch(rows, [[TABLE.toString('hex'), 'lww']]))) as unknown;
    const back = decodeBatch(wire);
    expect(back.rows.map((r) => Buffer.from(r.key).toString('hex'))).toEqual(rows.map((r) => r.key.toString('hex')));
    expect(back.tables.get(TABLE.toString('hex'))).toBe('lww');
  });

  it('refuse a batch whose bytes changed anywhere, naming the checksum', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, at, flip) => {
        const b = encodeBatch(rows.map((r) => ({ key: Buffer.from(r.key), record: Buffer.from(r.record) })), []);
        const target = b.rows[which]!;
        const i = at % target.length;
        // Keep keys parseable as storage keys (and in order) so only the checksum can catch it.
        if (which % 2 === 0 && i < 24) return;
        target[i] = target[i]! ^ flip;
        const e = thrown(() => decodeBatch(b), RingkvError);
        expect(e.message).toMatch(/checksum mismatch/);
      }),
    );
  });

  it('refuse malformed batches before looking at the checksum', () => {
    expect(thrown(() => decodeBatch({ rows: [rows[0]!.key], tables: [], checksum: 'x' }), RingkvError).message).toMatch(/\[key, record\] pairs/);
    expect(thrown(() => decodeBatch({ rows: [Buffer.from('short'), Buffer.from('r')], tables: [], checksum: 'x' }), RingkvError).message).toMatch(/not a storage key/);
    expect(thrown(() => decodeBatch({ rows: [rows[1]!.key, rows[1]!.record, rows[0]!.key, rows[0]!.record], tables: [], checksum: 'x' }), RingkvError).message).toMatch(/out of order/);
    expect(thrown(() => decodeBatch({ rows: [], tables: [['nothex', 'lww']], checksum: 'x' }), RingkvError).message).toMatch(/table entries/);
    const big = Array.from({ length: 10 }, (_, i) => ({ key: keyAt(BigInt(i), 'k'), record: Buffer.alloc(STREAM_LIMITS.streamBatchBytesMax / 4) }));
    expect(thrown(() => decodeBatch(encodeBatch(big, [])), RingkvError).message).toMatch(/exceeds the bound/);
  });
});

describe('movement progress', () => {
  const task = (start: bigint, end: bigint, target = 'n4'): TaskProgress =>
    taskProgressOf({ start: tokenFromBigInt(start), end: tokenFromBigInt(end), target, sources: ['n1'], replicas: ['n1', 'n2'], strict: true });

  it('persists through the meta encoding and resumes matching tasks at their cursors, others from the start', () => {
    const a = task(0n, 1000n);
    a.cursor = keyAt(500n, 'x').toString('hex');
    a.keys = 7;
    a.bytes = 700;
    const b = task(1000n, 2000n);
    b.done = true;
    const rec: MovementRecord = { id: 'join:n4:x', kind: 'join', node: 'n4', driver: 'n4', state: 'streaming', startedAt: 1, updatedAt: 2, tasks: [a, b] };
    const stored = unpack(pack(rec)) as MovementRecord;
    expect(stored).toEqual(rec);
    const replanned = [
      { start: tokenFromBigInt(0n), end: tokenFromBigInt(1000n), target: 'n4', sources: ['n2'], replicas: ['n1', 'n2'], strict: true },
      { start: tokenFromBigInt(1000n), end: tokenFromBigInt(1500n), target: 'n4', sources: ['n1'], replicas: ['n1'], strict: true },
    ];
    const resumed = resumeTasks(replanned, stored.tasks);
    expect(resumed[0]!.cursor).toBe(a.cursor);
    expect(resumed[0]!.keys).toBe(7);
    expect(resumed[0]!.sources).toEqual(['n2']);
    expect(resumed[1]!.cursor).toBeNull();
    expect(resumed[1]!.done).toBe(false);
  });

  it('reports the share of the span streamed, ranges, rate and an ETA', () => {
    const a = task(0n, 1000n);
    a.cursor = keyAt(500n, 'x').toString('hex');
    expect(taskFraction(a)).toBeCloseTo(0.5, 3);
    const b = task(1000n, 2000n);
    b.done = true;
    b.keys = 100;
    b.bytes = 10_000;
    const rec: MovementRecord = { id: 'm', kind: 'join', node: 'n4', driver: 'n4', state: 'streaming', startedAt: 0, updatedAt: 0, tasks: [a, b] };
    const s = summarize(rec, { sinceMs: 0, keys: 0, bytes: 0 }, 10_000);
    expect(s.rangesDone).toBe(1);
    expect(s.rangesTotal).toBe(2);
    expect(s.fraction).toBeCloseTo(0.75, 3);
    expect(s.keysPerSecond).toBe(10);
    expect(s.bytesPerSecond).toBe(1000);
    expect(s.etaSeconds).toBe(3);
    expect(s.sources).toBe(1);
  });
});

describe('the mover', () => {
  /** Fake replicas: each node's sorted rows; pages of `page` rows; a node can die after some pages. */
  function world(nodes: Record<string, StreamRow[]>, page = 3) {
    const dead = new Set<string>();
    const dieAfter = new Map<string, number>();
    const applied: StreamRow[] = [];
    const fetches: string[] = [];
    const ports: MoverPorts = {
      fetch: async (source, _range, after, _bytes, _rows): Promise<FetchedPage> => {
        if (dead.has(source)) throw new Error(`${source} is down`);
        const left = dieAfter.get(source);
        if (left !== undefined) {
          if (left === 0) {
            dead.add(source);
            throw new Error(`${source} died`);
          }
          dieAfter.set(source, left - 1);
        }
        fetches.push(source);
        const rows = nodes[source]!.filter((r) => after === null || Buffer.compare(r.key, after) > 0);
        const out = rows.slice(0, page);
        return { rows: out, tables: new Map(), next: rows.length > page ? out[out.length - 1]!.key : null };
      },
      apply: async (_t, rows) => {
        applied.push(...rows);
      },
      isUp: (id) => !dead.has(id),
      throttle: () => new ByteThrottle(1e12, 1e12, 0),
      progressed: () => {},
      stopped: () => false,
      sleep: async () => {},
      now: () => Date.now(),
      log: quiet,
    };
    return { ports, applied, dead, dieAfter, fetches };
  }

  const rowsOf = (names: string[]): StreamRow[] => names.map((n, i) => ({ key: keyAt(BigInt(100 + i * 10), n), record: Buffer.from(`rec-${n}`) }));
  const task = (sources: string[], replicas: string[], strict: boolean): TaskProgress =>
    taskProgressOf({ start: tokenFromBigInt(0n), end: tokenFromBigInt(10_000n), target: 'n4', sources, replicas, strict });

  it('streams a range page by page from its strict source, to the end', async () => {
    const all = rowsOf(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    const w = world({ n1: all });
    const t = task(['n1'], ['n1', 'n2'], true);
    await runTasks([t], w.ports, 1000);
    expect(t.done).toBe(true);
    expect(w.applied.map((r) => r.key.toString('hex'))).toEqual(all.map((r) => r.key.toString('hex')));
    expect(t.keys).toBe(all.length);
  });

  it('when the strict source dies mid-range, continues from the cursor on every other live replica, merged', async () => {
    // n1 (the loser) has everything; n2 missed 'd', n3 missed 'f': only together do they have it all.
    const all = rowsOf(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    const w = world({ n1: all, n2: all.filter((_, i) => i !== 3), n3: all.filter((_, i) => i !== 5) }, 2);
    w.dieAfter.set('n1', 1); // one page from n1, then it dies
    const t = task(['n1'], ['n1', 'n2', 'n3'], true);
    await runTasks([t], w.ports, 1000);
    expect(t.done).toBe(true);
    expect(t.strict).toBe(false);
    expect(t.sources).toEqual(['n2', 'n3']);
    const got = new Set(w.applied.map((r) => r.key.toString('hex')));
    expect([...got].sort()).toEqual(all.map((r) => r.key.toString('hex')).sort());
    // Nothing before the cursor was fetched again: the first page came from n1 only.
    expect(w.fetches[0]).toBe('n1');
    expect(w.fetches.slice(1).every((s) => s !== 'n1')).toBe(true);
  });

  it('merges multi-source pages only up to the smallest unfinished cursor', () => {
    const [a, b, c, d] = rowsOf(['a', 'b', 'c', 'd']);
    const m = mergeSourcePages([
      { rows: [a!, b!], next: b!.key },
      { rows: [a!, c!, d!], next: null },
    ]);
    expect(m.next).toEqual(b!.key);
    expect(m.rows.map((r) => r.key)).toEqual([a!.key, a!.key, b!.key]);
  });

  it('stalls (and says why) when no replica is left to stream from', async () => {
    const w = world({ n1: rowsOf(['a']) });
    w.dead.add('n1');
    let now = 0;
    w.ports.now = () => (now += 500);
    const t = task(['n1'], ['n1'], true);
    const e = await runTasks([t], w.ports, 2000).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StallError);
    expect(String((e as Error).message)).toMatch(/no live replica to stream from/);
    expect(t.done).toBe(false);
  });
});

describe('ring table: pending intervals', () => {
  const ivs = (ranges: Array<[bigint, bigint]>): Array<[bigint, bigint]> => {
    const flat = toPendingIntervals(
      ranges.map(([s, e], pos) => {
        const a = tokenFromBigInt(s);
        const b = tokenFromBigInt(e);
        return { pos, startHi: a.hi, startLo: a.lo, endHi: b.hi, endLo: b.lo };
      }),
    );
    const out: Array<[bigint, bigint]> = [];
    for (let i = 0; i < flat.length; i += 4) out.push([tokenToBigInt({ hi: flat[i]!, lo: flat[i + 1]! }), tokenToBigInt({ hi: flat[i + 2]!, lo: flat[i + 3]! })]);
    return out;
  };

  it('turns ring ranges into sorted, merged, inclusive intervals that cover exactly the same tokens', () => {
    expect(ivs([[10n, 20n]])).toEqual([[11n, 20n]]);
    expect(ivs([[20n, 30n], [10n, 20n]])).toEqual([[11n, 30n]]); // adjacent: merged
    expect(ivs([[TWO64 - 5n, 3n]])).toEqual([[0n, 3n], [TWO64 - 4n, TWO64 - 1n]]); // wrapping: split
    expect(ivs([[7n, 7n]])).toEqual([[0n, TWO64 - 1n]]); // one token: the whole ring
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 0n, max: 1000n })), { maxLength: 6 }), fc.array(fc.bigInt({ min: 0n, max: 1002n }), { maxLength: 40 }), (raw, points) => {
        const ranges = raw.filter(([s, e]) => s !== e);
        const out = ivs(ranges);
        for (let i = 1; i < out.length; i++) expect(out[i]![0]).toBeGreaterThan(out[i - 1]![1] + 1n);
        for (const p of points) {
          const inRange = ranges.some(([s, e]) => (s < e ? p > s && p <= e : p > s || p <= e));
          expect(out.some(([lo, hi]) => p >= lo && p <= hi)).toBe(inRange);
        }
      }),
    );
  });

  it('makes a published node a pending replica (replicaRank PENDING) of exactly those tokens', () => {
    const table = RingTable.create();
    const layout = buildRing([{ id: 'a', tokens: [tokenFromBigInt(1000n), tokenFromBigInt(2000n)], status: 'normal' }], { maxReplicas: 3 });
    const s: Token = tokenFromBigInt(5000n);
    const e: Token = tokenFromBigInt(6000n);
    table.publish(layout, -1, () => Liveness.Up, [{ pos: 0, startHi: s.hi, startLo: s.lo, endHi: e.hi, endLo: e.lo }]);
    const rank = (t: bigint): number => {
      const k = tokenFromBigInt(t);
      return table.replicaRank(k.hi, k.lo);
    };
    expect(rank(5000n)).toBe(NOT_STORED);
    expect(rank(5001n)).toBe(PENDING);
    expect(rank(6000n)).toBe(PENDING);
    expect(rank(6001n)).toBe(NOT_STORED);
    expect(table.isReplica(tokenFromBigInt(5500n).hi, tokenFromBigInt(5500n).lo)).toBe(true);
    expect(table.pendingIntervals().map((x) => tokenToHex(x.low))).toEqual([tokenToHex(tokenFromBigInt(5001n))]);
    // The next publication without pending ranges clears them.
    table.publish(layout, 0, () => Liveness.Up);
    expect(rank(5500n)).toBe(0);
    expect(table.pendingIntervals()).toEqual([]);
  });
});
