import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { MerkleTree, initMerkle, leafIndex, type Hash64 } from '../../src/merkle/index.js';
import { batchBySize, diffKeyDigests, leafTokenRuns, planKeyRepairs, tableIdHexOfStorageKey, type KeyState, type RepairPolicy } from '../../src/repair/plan.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { decodeRecord, encodeRecord, initVersions, newVersion, recordDigest, versionsEqual, type VClock, type Version } from '../../src/versions/index.js';
import { tombstoneRecord, valueRecord } from '../../src/wide/cell.js';

beforeAll(async () => {
  await initMerkle();
  await initVersions();
});

const TWO64 = 1n << 64n;
const big = (h: Hash64): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);
const tok = (b: bigint): Hash64 => ({ hi: Number((b >> 32n) & 0xffffffffn), lo: Number(b & 0xffffffffn) });

/** Is token t in ring range (s, e] (s == e: the whole ring)? */
function inRing(s: bigint, e: bigint, t: bigint): boolean {
  if (s === e) return true;
  return s < e ? t > s && t <= e : t > s || t <= e;
}

describe('leafTokenRuns', () => {
  const u64 = fc.bigInt({ min: 0n, max: TWO64 - 1n });

  it('a leaf run holds exactly the tokens leafIndex maps to its leaves (random ranges, tokens, depths)', () => {
    fc.assert(
      fc.property(u64, u64, fc.integer({ min: 1, max: 10 }), fc.array(u64, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 1023 }), (s, e, depth, raw, pick) => {
        const start = tok(s);
        const end = tok(e);
        const width = s === e ? TWO64 : (e - s + TWO64) % TWO64;
        // Tokens inside the range: offsets from start+1, plus the range's two edges.
        const tokens = [...raw.map((r) => (s + 1n + (r % width)) % TWO64), (s + 1n) % TWO64, e];
        const leaves = [...new Set(tokens.map((t) => leafIndex(start, end, tok(t), depth)))].sort((a, b) => a - b);
        const chosen = leaves.filter((_, i) => ((pick >> i % 10) & 1) === 1 || i === 0);
        const runs = leafTokenRuns(start, end, depth, chosen);
        for (const t of tokens) {
          const inRuns = runs.some((r) => inRing(big(r.start), big(r.end), t));
          expect(inRuns).toBe(chosen.includes(leafIndex(start, end, tok(t), depth)));
        }
        for (const r of runs) expect(inRing(s, e, big(r.end))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('merges consecutive leaves and covers the whole range with all leaves', () => {
    const start = tok(100n);
    const end = tok(100n + 1024n);
    const runs = leafTokenRuns(start, end, 3, [0, 1, 2, 5, 7]);
    expect(runs.map((r) => [r.firstLeaf, r.lastLeaf])).toEqual([
      [0, 2],
      [5, 5],
      [7, 7],
    ]);
    expect(big(runs[0]!.start)).toBe(100n);
    expect(big(runs[0]!.end)).toBe(100n + 3n * 128n);
    const all = leafTokenRuns(start, end, 3, [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(all).toHaveLength(1);
    expect([big(all[0]!.start), big(all[0]!.end)]).toEqual([100n, 100n + 1024n]);
    // Whole ring (start == end): all leaves give (s, s], which tokenRangeBounds reads as the whole ring.
    const whole = leafTokenRuns(tok(5n), tok(5n), 2, [0, 1, 2, 3]);
    expect(whole).toHaveLength(1);
    expect(big(whole[0]!.start)).toBe(big(whole[0]!.end));
  });

  it('drops leaves that hold no token (a range narrower than the leaf count)', () => {
    const runs = leafTokenRuns(tok(10n), tok(13n), 4, Array.from({ length: 16 }, (_, i) => i));
    // 3 tokens (11, 12, 13) over 16 leaves: one run over all, no empty (s, s] run.
    expect(runs).toHaveLength(1);
    expect([big(runs[0]!.start), big(runs[0]!.end)]).toEqual([10n, 13n]);
    const sparse = leafTokenRuns(tok(10n), tok(13n), 4, [1, 2, 3]);
    for (const r of sparse) expect(big(r.start)).not.toBe(big(r.end));
  });

  it('rejects bad input', () => {
    expect(() => leafTokenRuns(tok(0n), tok(9n), 3, [2, 1])).toThrow(/ascending/);
    expect(() => leafTokenRuns(tok(0n), tok(9n), 3, [8])).toThrow(/outside/);
  });
});

describe('diffKeyDigests', () => {
  const k = (s: string): Uint8Array => Buffer.from(s);
  it('finds keys that differ or that one side lacks, and nothing else', () => {
    const d = diffKeyDigests(
      [
        { key: k('a'), hi: 1, lo: 1 },
        { key: k('b'), hi: 2, lo: 2 },
        { key: k('c'), hi: 3, lo: 3 },
      ],
      [
        { key: k('b'), hi: 2, lo: 2 },
        { key: k('c'), hi: 3, lo: 4 },
        { key: k('d'), hi: 5, lo: 5 },
      ],
    );
    expect(d.both.map((x) => Buffer.from(x).toString())).toEqual(['c']);
    expect(d.onlyLocal.map((x) => Buffer.from(x).toString())).toEqual(['a']);
    expect(d.onlyRemote.map((x) => Buffer.from(x).toString())).toEqual(['d']);
    expect(d.compared).toBe(4);
  });

  it('property: trees built from the two lists agree iff the diff is empty', () => {
    const entry = fc.record({ key: fc.uint8Array({ minLength: 1, maxLength: 4 }), hi: fc.integer({ min: 0, max: 3 }), lo: fc.constant(7) });
    fc.assert(
      fc.property(fc.uniqueArray(entry, { selector: (e) => Buffer.from(e.key).toString('hex') }), fc.uniqueArray(entry, { selector: (e) => Buffer.from(e.key).toString('hex') }), (a, b) => {
        const d = diffKeyDigests(a, b);
        const ta = new MerkleTree(2);
        const tb = new MerkleTree(2);
        for (const e of a) ta.update(e.key[0]! & 3, e.key, null, e);
        for (const e of b) tb.update(e.key[0]! & 3, e.key, null, e);
        const empty = d.both.length + d.onlyLocal.length + d.onlyRemote.length === 0;
        expect(ta.rootHex() === tb.rootHex()).toBe(empty);
      }),
      { numRuns: 200 },
    );
  });
});

const VC_TABLE = '11'.repeat(16);
const LWW_TABLE = '22'.repeat(16);
const CELL_TABLE = '33'.repeat(16);
/** A version set as its stored record bytes, and back. */
const rec = (v: Version[] | null): Buffer | null => (v === null ? null : encodeRecord(v));
const vs = (r: Uint8Array): Version[] => decodeRecord(r);
const skey = (table: string, name: string): Buffer => encodeStorageKey(1, 2, Buffer.from(table, 'hex'), Buffer.from(name));

function ver(node: string, counter: number, context: VClock, o: { ts?: number; tombstone?: boolean; value?: string } = {}): Version {
  const tombstone = o.tombstone ?? false;
  return newVersion({ node, counter, context, ts: o.ts ?? counter, tombstone, value: tombstone ? new Uint8Array(0) : Buffer.from(o.value ?? `${node}:${counter}`), maxClockEntries: 16 });
}

function policy(over: Partial<RepairPolicy> = {}): RepairPolicy {
  return {
    modeOf: (id) => (id === VC_TABLE ? 'vclock' : id === LWW_TABLE ? 'lww' : id === CELL_TABLE ? 'cell' : undefined),
    localMayStore: () => true,
    remoteMayStore: () => true,
    graceSecondsOf: () => 10,
    maxSiblings: 16,
    nowMs: 1_000_000,
    ...over,
  };
}

describe('planKeyRepairs', () => {
  it('reads the table id from the storage key', () => {
    const id = 'deadbeef'.repeat(4);
    expect(tableIdHexOfStorageKey(skey(id, 'x'))).toBe(id);
  });

  it('a key only one side has flows to the other side', () => {
    const v = [ver('n1', 5, [])];
    const p = planKeyRepairs(
      [
        { key: skey(VC_TABLE, 'a'), local: rec(v), remote: null },
        { key: skey(VC_TABLE, 'b'), local: null, remote: rec(v) },
      ],
      policy(),
    );
    expect(p.toRemote.map((a) => Buffer.from(a.key).toString('latin1'))).toEqual([skey(VC_TABLE, 'a').toString('latin1')]);
    expect(p.toLocal.map((a) => Buffer.from(a.key).toString('latin1'))).toEqual([skey(VC_TABLE, 'b').toString('latin1')]);
    expect(versionsEqual(vs(p.toRemote[0]!.record), v)).toBe(true);
  });

  it('concurrent vclock writes become siblings on both sides; lww picks one winner for both', () => {
    const a = ver('n1', 5, [], { value: 'left' });
    const b = ver('n3', 6, [], { value: 'right' });
    const la = ver('n1', 5, [], { ts: 100, value: 'old' });
    const lb = ver('n3', 6, [], { ts: 200, value: 'new' });
    const p = planKeyRepairs(
      [
        { key: skey(VC_TABLE, 'k'), local: rec([a]), remote: rec([b]) },
        { key: skey(LWW_TABLE, 'k'), local: rec([la]), remote: rec([lb]) },
      ],
      policy(),
    );
    const vcLocal = p.toLocal.find((x) => x.tableId === VC_TABLE)!;
    const vcRemote = p.toRemote.find((x) => x.tableId === VC_TABLE)!;
    expect(vs(vcLocal.record)).toHaveLength(2);
    expect(versionsEqual(vs(vcLocal.record), vs(vcRemote.record))).toBe(true);
    // LWW: the remote already holds the winner, only the local side is stale.
    expect(p.toRemote.filter((x) => x.tableId === LWW_TABLE)).toHaveLength(0);
    const lw = p.toLocal.find((x) => x.tableId === LWW_TABLE)!;
    expect(lw.mode).toBe('lww');
    expect(Buffer.from(vs(lw.record)[0]!.value).toString()).toBe('new');
  });

  it('a tombstone written with the value in its context wins over a replica that missed the delete', () => {
    const value = ver('n1', 5, []);
    const tomb = ver('n2', 9, value.clock, { tombstone: true, ts: 999_999_000 });
    const p = planKeyRepairs([{ key: skey(VC_TABLE, 'd'), local: rec([tomb]), remote: rec([value]) }], policy());
    expect(p.toLocal).toHaveLength(0);
    expect(p.toRemote).toHaveLength(1);
    expect(vs(p.toRemote[0]!.record)).toHaveLength(1);
    expect(vs(p.toRemote[0]!.record)[0]!.tombstone).toBe(true);
    // Even past the grace period a stale value still gets the tombstone (both sides hold the key).
    const late = planKeyRepairs([{ key: skey(VC_TABLE, 'd'), local: rec([tomb]), remote: rec([value]) }], policy({ nowMs: 10_000_000 }));
    expect(late.toRemote).toHaveLength(1);
  });

  it('a one-sided tombstone past the grace period is not shipped back (the peer purged it)', () => {
    const tomb = ver('n2', 9, [], { tombstone: true, ts: 1 });
    const fresh = ver('n2', 10, [], { tombstone: true, ts: 999_999_999 });
    const p = planKeyRepairs(
      [
        { key: skey(VC_TABLE, 'old'), local: rec([tomb]), remote: null },
        { key: skey(VC_TABLE, 'new'), local: null, remote: rec([fresh]) },
      ],
      policy(),
    );
    expect(p.purgeable).toBe(1);
    expect(p.toRemote).toHaveLength(0);
    expect(p.toLocal).toHaveLength(1);
  });

  it('leaves keys of unknown tables alone, skips equal states, and honours table N per side', () => {
    const v = [ver('n1', 5, [])];
    const states: KeyState[] = [
      { key: skey('99'.repeat(16), 'x'), local: rec(v), remote: null },
      { key: skey(VC_TABLE, 'same'), local: rec(v), remote: rec(v) },
      { key: skey(VC_TABLE, 'n'), local: rec(v), remote: null },
    ];
    const p = planKeyRepairs(states, policy({ remoteMayStore: () => false }));
    expect(p.unknownTable).toBe(1);
    expect(p.equal).toBe(1);
    expect(p.toRemote).toHaveLength(0);
  });

  it('cell records: the later cell (a deletion here) flows to the stale side; a purgeable one-sided cell tombstone stays put', () => {
    const live = valueRecord(100, Buffer.from('v'), 0, 900);
    const del = tombstoneRecord(200, 950);
    const p = planKeyRepairs([{ key: skey(CELL_TABLE, 'c'), local: live, remote: del }], policy());
    expect(p.toRemote).toHaveLength(0);
    expect(p.toLocal).toHaveLength(1);
    expect(p.toLocal[0]!.mode).toBe('cell');
    expect(Buffer.compare(p.toLocal[0]!.record, del)).toBe(0);
    // At 1000 s with a 10 s grace, a tombstone dated 950 s is kept, one dated 100 s may be purged.
    const old = tombstoneRecord(50, 100);
    const q = planKeyRepairs([{ key: skey(CELL_TABLE, 'o'), local: old, remote: null }], policy());
    expect(q.purgeable).toBe(1);
    expect(q.toRemote).toHaveLength(0);
  });

  it('property: after applying the plan both sides hold equal version sets (same digest)', () => {
    // A dot names one write: its timestamp and tombstone flag are functions of the dot.
    const arbVersion = fc.record({ node: fc.constantFrom('n1', 'n2', 'n3'), counter: fc.integer({ min: 1, max: 50 }) });
    const arbSide = fc.option(fc.uniqueArray(arbVersion, { selector: (v) => `${v.node}:${v.counter}`, maxLength: 3 }), { nil: null });
    fc.assert(
      fc.property(arbSide, arbSide, fc.constantFrom(VC_TABLE, LWW_TABLE), (l, r, table) => {
        const mk = (xs: typeof l): Version[] | null => (xs === null ? null : xs.map((x) => ver(x.node, x.counter, [], { ts: (x.counter * 7) % 100, tombstone: x.counter % 3 === 0 })));
        let local = mk(l);
        let remote = mk(r);
        const key = skey(table, 'p');
        const plan = planKeyRepairs([{ key, local: rec(local), remote: rec(remote) }], policy({ nowMs: 0, graceSecondsOf: () => 1e6 }));
        const mergeIn = (cur: Version[] | null, a: { record: Uint8Array } | undefined): Version[] | null => (a ? vs(a.record) : cur);
        local = mergeIn(local, plan.toLocal[0]);
        remote = mergeIn(remote, plan.toRemote[0]);
        const d = (x: Version[] | null): string => (x && x.length > 0 ? JSON.stringify(recordDigest(x)) : 'none');
        // Sets were canonical inputs of at most 3 versions: after the plan, both hold the merge.
        if (plan.toLocal.length + plan.toRemote.length > 0 || plan.equal > 0) expect(d(local)).toBe(d(remote));
      }),
      { numRuns: 300 },
    );
  });
});

describe('batchBySize', () => {
  it('bounds count and bytes, keeps order, and lets an oversized item through alone', () => {
    const items = [5, 5, 5, 20, 1, 1, 1, 1];
    const b = batchBySize(items, (x) => x, 3, 10);
    expect(b).toEqual([[5, 5], [5], [20], [1, 1, 1], [1]]);
    expect(b.flat()).toEqual(items);
  });
});
