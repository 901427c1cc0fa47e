import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DotCounter,
  contextOf,
  hasSeen,
  decodeContext,
  encodeContext,
  isDeleted,
  liveValues,
  mergeLwwVersions,
  mergeVclockVersions,
  mergeVersions,
  newVersion,
  purgeableTombstones,
  readableValues,
  vcCompare,
  vcCovers,
  vcGet,
  versionsEqual,
  type VClock,
  type Version,
} from '../../src/versions/index.js';

const BIG = 1000; // maxSiblings large enough that the bound never kicks in
const EMPTY = new Uint8Array(0);
const NODES = ['n1', 'n2', 'n3'];

const M = (a: readonly Version[], b: readonly Version[]): Version[] => mergeVclockVersions(a, b, BIG);

function ver(node: string, counter: number, context: VClock, extra: Partial<{ ts: number; tombstone: boolean; value: Uint8Array }> = {}): Version {
  const tombstone = extra.tombstone ?? false;
  return newVersion({
    node,
    counter,
    context,
    ts: extra.ts ?? counter,
    tombstone,
    value: tombstone ? EMPTY : (extra.value ?? Uint8Array.of(counter & 0xff)),
    maxClockEntries: 100,
  });
}

// ---- Causal histories. A small replicated simulation rather than arbitrary subsets of
// versions: a client reads some replica's state (or writes blind), the coordinator merges
// the new version into its own copy first and ships that merged copy, and replicas
// anti-entropy with each other. That keeps contexts honest (see version.ts), which is the
// precondition of the merge laws. ----
const writeArb = fc.record({
  kind: fc.constant('write' as const),
  coord: fc.nat(NODES.length - 1),
  readFrom: fc.option(fc.nat(NODES.length - 1)), // null: blind write
  shipTo: fc.array(fc.boolean(), { minLength: NODES.length, maxLength: NODES.length }),
  tombstone: fc.boolean(),
  value: fc.uint8Array({ maxLength: 2 }),
  step: fc.integer({ min: 1, max: 3 }),
  tsJitter: fc.integer({ min: 0, max: 2 }),
});
const syncArb = fc.record({
  kind: fc.constant('sync' as const),
  from: fc.nat(NODES.length - 1),
  to: fc.nat(NODES.length - 1),
});
type WriteOp = typeof writeArb extends fc.Arbitrary<infer T> ? T : never;
type SimOp = WriteOp | { kind: 'sync'; from: number; to: number };
const opsArb: fc.Arbitrary<SimOp[]> = fc.array(fc.oneof({ weight: 3, arbitrary: writeArb }, { weight: 1, arbitrary: syncArb }), {
  minLength: 1,
  maxLength: 12,
});

interface Sim {
  /** Every version ever written. */
  all: Version[];
  /** Every replica state observed during the run (all reachable, realistic states). */
  states: Version[][];
  /** Highest counter issued per node. */
  last: Map<string, number>;
}

function simulate(ops: readonly SimOp[]): Sim {
  const replicas: Version[][] = NODES.map(() => []);
  const sim: Sim = { all: [], states: [[]], last: new Map() };
  for (const op of ops) {
    if (op.kind === 'sync') {
      replicas[op.to] = M(replicas[op.to]!, replicas[op.from]!);
    } else {
      const context = op.readFrom === null ? [] : contextOf(replicas[op.readFrom]!);
      const node = NODES[op.coord]!;
      const counter = Math.max(sim.last.get(node) ?? 0, vcGet(context, node)) + op.step;
      sim.last.set(node, counter);
      const v = ver(node, counter, context, { tombstone: op.tombstone, value: op.value, ts: counter + op.tsJitter });
      sim.all.push(v);
      replicas[op.coord] = M(replicas[op.coord]!, [v]);
      op.shipTo.forEach((ship, i) => {
        if (ship) replicas[i] = M(replicas[i]!, replicas[op.coord]!);
      });
    }
    sim.states.push(...replicas);
  }
  return sim;
}

const pickState = (sim: Sim, i: number): Version[] => sim.states[i % sim.states.length]!;

const scenarioArb = fc.record({
  ops: opsArb,
  a: fc.nat(),
  b: fc.nat(),
  c: fc.nat(),
});

function isCanonical(vs: readonly Version[]): boolean {
  for (let i = 1; i < vs.length; i++) {
    const [x, y] = [vs[i - 1]!.dot, vs[i]!.dot];
    if (!(x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]))) return false;
  }
  return true;
}

describe('mergeVclockVersions (DVV-set)', () => {
  it('is commutative, associative and idempotent, with canonical output', () => {
    fc.assert(
      fc.property(scenarioArb, ({ ops, a, b, c }) => {
        const sim = simulate(ops);
        const [A, B, C] = [pickState(sim, a), pickState(sim, b), pickState(sim, c)];
        const ab = M(A, B);
        expect(isCanonical(ab)).toBe(true);
        expect(versionsEqual(ab, M(B, A))).toBe(true);
        expect(versionsEqual(M(ab, C), M(A, M(B, C)))).toBe(true);
        expect(versionsEqual(M(A, A), M(A, []))).toBe(true);
        expect(versionsEqual(M(ab, ab), ab)).toBe(true);
        expect(versionsEqual(M(ab, A), ab)).toBe(true);
      }),
    );
  });

  it('never loses a write: every dropped version is covered by a survivor, no survivor by another', () => {
    fc.assert(
      fc.property(scenarioArb, ({ ops, a, b }) => {
        const sim = simulate(ops);
        const [A, B] = [pickState(sim, a), pickState(sim, b)];
        const out = M(A, B);
        for (const x of [...A, ...B]) {
          const survives = out.some((v) => v.dot === x.dot || (v.dot[0] === x.dot[0] && v.dot[1] === x.dot[1]));
          if (!survives) expect(out.some((y) => hasSeen(y, x.dot))).toBe(true);
        }
        for (const x of out) expect(out.some((y) => y !== x && hasSeen(y, x.dot))).toBe(false);
      }),
    );
  });

  it('gives the same result for every delivery order', () => {
    fc.assert(
      fc.property(
        opsArb.chain((ops) => {
          const { all } = simulate(ops);
          return fc.tuple(fc.constant(all), fc.shuffledSubarray(all, { minLength: all.length }));
        }),
        ([all, shuffled]) => {
          const inOrder = all.reduce<Version[]>((acc, v) => M(acc, [v]), []);
          const shuffledOrder = shuffled.reduce<Version[]>((acc, v) => M(acc, [v]), []);
          expect(versionsEqual(inOrder, shuffledOrder)).toBe(true);
        },
      ),
    );
  });

  it('a write with the merged context of a set supersedes all of it', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(NODES.length - 1), ({ ops, a, b }, n) => {
        const sim = simulate(ops);
        const S = M(pickState(sim, a), pickState(sim, b));
        const ctx = contextOf(S);
        const node = NODES[n]!;
        const w = ver(node, (sim.last.get(node) ?? 0) + 1, ctx);
        expect(M(S, [w])).toEqual([w]);
        expect(M([w], S)).toEqual([w]);
      }),
    );
  });

  it('two writes through the same node with the same context are siblings', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(NODES.length - 1), ({ ops, a }, n) => {
        const sim = simulate(ops);
        const S = pickState(sim, a);
        const ctx = contextOf(S);
        const node = NODES[n]!;
        const base = sim.last.get(node) ?? 0;
        const v1 = ver(node, base + 1, ctx);
        const v2 = ver(node, base + 2, ctx);
        expect(M([v1], [v2])).toEqual([v1, v2]);
        const withS = M(M(S, [v2]), [v1]);
        expect(withS).toEqual([v1, v2]); // both supersede S (when S is non-empty), neither each other
      }),
    );
  });

  it('blind writes through the same coordinator become siblings', () => {
    const dots = new DotCounter({ now: () => 1 }); // a stuck clock still yields distinct dots
    const v1 = ver('n1', dots.next(), []);
    const v2 = ver('n1', dots.next(), []);
    expect(M([v1], [v2])).toEqual([v1, v2]);
  });

  it('uses prior, not the own clock entry, to decide what a writer saw from its own node', () => {
    const v1 = ver('n1', 10, []);
    const v2 = ver('n1', 20, []); // clock {n1: 20} covers (n1, 10), but v2 never saw v1
    expect(v2.prior).toBe(0);
    expect(hasSeen(v2, v1.dot)).toBe(false);
    const v3 = ver('n1', 30, contextOf([v1]));
    expect(v3.prior).toBe(10);
    expect(hasSeen(v3, v1.dot)).toBe(true);
    expect(hasSeen(v3, v2.dot)).toBe(false);
    expect(M([v1, v2], [v3])).toEqual([v2, v3]);
  });

  it('documents the version-vector context caveat: a context only from a later write claims earlier ones', () => {
    // A replica that received blind write v2 but not v1 (both via n1) hands out {n1: 20};
    // a write with that context supersedes v1 too. Coordinators ship their merged local
    // copy so a replica holding v2 also holds v1, which makes this unreachable.
    const v1 = ver('n1', 10, []);
    const v2 = ver('n1', 20, []);
    const w = ver('n2', 1, contextOf([v2]));
    expect(M([v1, v2], [w])).toEqual([w]);
  });

  it('keeps one copy of a duplicated dot, even if the copies diverged', () => {
    const v = ver('n1', 5, []);
    expect(M([v], [v])).toEqual([v]);
    const twin: Version = { ...v, value: Uint8Array.of(9, 9) };
    const r1 = M([v], [twin]);
    const r2 = M([twin], [v]);
    expect(r1).toHaveLength(1);
    expect(versionsEqual(r1, r2)).toBe(true);
  });

  it('bounds siblings by dropping the oldest ts, output still canonical', () => {
    const vs = [5, 1, 4, 2, 3].map((ts, i) => ver(`n${i}`, 10, [], { ts }));
    const out = mergeVclockVersions(vs.slice(0, 2), vs.slice(2), 3);
    expect(out.map((v) => v.ts).sort()).toEqual([3, 4, 5]);
    expect(isCanonical(out)).toBe(true);
    expect(() => mergeVclockVersions([], [], 0)).toThrow(/maxSiblings/);
  });

  it('handles sibling counts beyond the bitmask fast path', () => {
    const blind = Array.from({ length: 40 }, (_, i) => ver('n1', i + 1, []));
    const w = ver('n2', 1, contextOf(blind.slice(0, 20)));
    const out = M(blind, [w]);
    expect(out).toHaveLength(21);
    expect(out).toContain(w);
    expect(out.filter((v) => v.dot[0] === 'n1').map((v) => v.dot[1])).toEqual(Array.from({ length: 20 }, (_, i) => i + 21));
  });

  it('keeps both sides of a causal cycle rather than dropping every write', () => {
    // Only reachable with reused dots/corrupt clocks; must not turn into "no value".
    const x: Version = { dot: ['a', 1], clock: [['a', 1], ['b', 1]], prior: 0, ts: 1, tombstone: false, value: Uint8Array.of(1) };
    const y: Version = { dot: ['b', 1], clock: [['a', 1], ['b', 1]], prior: 0, ts: 1, tombstone: false, value: Uint8Array.of(2) };
    expect(M([x], [y])).toEqual([x, y]);
  });

  it('a delete with the context supersedes; a concurrent write survives it', () => {
    const v1 = ver('n1', 1, []);
    const del = ver('n2', 1, contextOf([v1]), { tombstone: true });
    const concurrent = ver('n3', 1, []);
    const out = M(M([v1], [del]), [concurrent]);
    expect(out).toEqual([del, concurrent]);
    expect(liveValues(out, 0)).toEqual([concurrent]);
    expect(isDeleted(out, 0)).toBe(false);
    expect(isDeleted(M([v1], [del]), 0)).toBe(true);
  });
});

// ---- LWW ----
const lwwVersionArb: fc.Arbitrary<Version> = fc
  .record({
    node: fc.constantFrom('a', 'b'),
    counter: fc.integer({ min: 1, max: 3 }),
    ts: fc.integer({ min: 1, max: 3 }),
    tombstone: fc.boolean(),
    value: fc.uint8Array({ maxLength: 2, max: 2 }),
  })
  .map(({ node, counter, ts, tombstone, value }) => ({
    dot: [node, counter] as const,
    clock: [[node, counter] as const],
    prior: 0,
    ts,
    tombstone,
    value: tombstone ? EMPTY : value,
  }));

/** Spec winner: highest ts, tombstone, larger value bytes, larger dot (then clock). */
function specBeats(x: Version, y: Version): boolean {
  if (x.ts !== y.ts) return x.ts > y.ts;
  if (x.tombstone !== y.tombstone) return x.tombstone;
  const c = Buffer.compare(x.value, y.value);
  if (c !== 0) return c > 0;
  if (x.dot[0] !== y.dot[0]) return x.dot[0] > y.dot[0];
  return x.dot[1] > y.dot[1];
}

describe('mergeLwwVersions', () => {
  const vs = fc.array(lwwVersionArb, { maxLength: 3 });

  it('is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(vs, vs, vs, (a, b, c) => {
        const ab = mergeLwwVersions(a, b);
        expect(ab.length).toBe(a.length + b.length === 0 ? 0 : 1);
        expect(versionsEqual(ab, mergeLwwVersions(b, a))).toBe(true);
        expect(versionsEqual(mergeLwwVersions(ab, c), mergeLwwVersions(a, mergeLwwVersions(b, c)))).toBe(true);
        expect(versionsEqual(mergeLwwVersions(ab, ab), ab)).toBe(true);
      }),
    );
  });

  it('picks the spec winner for every delivery order', () => {
    fc.assert(
      fc.property(
        fc.array(lwwVersionArb, { minLength: 1, maxLength: 6 }).chain((all) =>
          fc.tuple(fc.constant(all), fc.shuffledSubarray(all, { minLength: all.length })),
        ),
        ([all, shuffled]) => {
          const winner = shuffled.reduce<Version[]>((acc, v) => mergeLwwVersions(acc, [v]), []);
          const expected = all.reduce((best, v) => (specBeats(v, best) ? v : best));
          expect(winner).toHaveLength(1);
          expect(versionsEqual(winner, [expected])).toBe(true);
        },
      ),
    );
  });

  it('applies the documented tie-breaks', () => {
    const v = (ts: number, tombstone: boolean, value: number[], node = 'a', counter = 1): Version => ({
      dot: [node, counter],
      clock: [[node, counter]],
      prior: 0,
      ts,
      tombstone,
      value: Uint8Array.from(value),
    });
    expect(mergeLwwVersions([v(2, false, [1])], [v(1, true, [])])[0]!.ts).toBe(2);
    expect(mergeLwwVersions([v(1, false, [9])], [v(1, true, [])])[0]!.tombstone).toBe(true);
    expect(mergeLwwVersions([v(1, false, [1, 0])], [v(1, false, [1])])[0]!.value).toEqual(Uint8Array.of(1, 0));
    expect(mergeLwwVersions([v(1, false, [1], 'a')], [v(1, false, [1], 'b')])[0]!.dot[0]).toBe('b');
    expect(mergeLwwVersions([], [])).toEqual([]);
  });
});

describe('mergeVersions / versionsEqual', () => {
  it('dispatches on mode', () => {
    const x = ver('n1', 1, [], { ts: 5 });
    const y = ver('n2', 1, [], { ts: 6 });
    expect(mergeVersions('vclock', [x], [y], BIG)).toEqual([x, y]);
    expect(mergeVersions('lww', [x], [y], BIG)).toEqual([y]);
  });

  it('is order-insensitive and notices any difference', () => {
    const x = ver('n1', 1, []);
    const y = ver('n2', 1, []);
    expect(versionsEqual([x, y], [y, x])).toBe(true);
    expect(versionsEqual([x], [x, y])).toBe(false);
    expect(versionsEqual([x], [{ ...x, value: Uint8Array.of(7) }])).toBe(false);
    expect(versionsEqual([x], [{ ...x, ts: x.ts + 1 }])).toBe(false);
    expect(versionsEqual([x], [{ ...x, prior: 0 }])).toBe(true);
    const z = ver('n3', 5, []);
    expect(versionsEqual([z], [{ ...z, prior: 3 }])).toBe(false);
    expect(versionsEqual([x], [{ ...x, clock: [['n1', 1], ['n2', 1]] }])).toBe(false);
    expect(versionsEqual([x], [{ ...x, dot: ['n1', 1], clock: [['n1', 1]], value: Buffer.from(x.value) }])).toBe(true);
  });
});

describe('contexts', () => {
  it('contextOf merges every clock', () => {
    const x = ver('n1', 3, []);
    const y = ver('n2', 4, [['n1', 1]]);
    expect(contextOf([x, y])).toEqual([['n1', 3], ['n2', 4]]);
    expect(contextOf([])).toEqual([]);
  });

  it('round-trips through encode/decode', () => {
    fc.assert(
      fc.property(scenarioArb, ({ ops, a }) => {
        const ctx = contextOf(pickState(simulate(ops), a));
        const s = encodeContext(ctx);
        expect(s).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(decodeContext(s)).toEqual(ctx);
        expect(vcCompare(decodeContext(s), ctx)).toBe('equal');
      }),
    );
    expect(encodeContext([])).toBe('');
    expect(decodeContext('')).toEqual([]);
    const big: VClock = [['node-with-a-long-id', 2 ** 53 - 1]];
    expect(decodeContext(encodeContext(big))).toEqual(big);
  });

  it('rejects garbage with Error("malformed context")', () => {
    const enc = (x: unknown): string => Buffer.from(JSON.stringify(x)).toString('base64url');
    const cases = [
      'not base64!',
      '====',
      'AAAA',
      enc({ a: 1 }),
      encodeContext([['a', 1]]) + 'A',
      // valid msgpack, but not a valid clock: unsorted / zero counter
      Buffer.from('92' + '92a162' + '01' + '92a161' + '01', 'hex').toString('base64url'),
      Buffer.from('9192a16100', 'hex').toString('base64url'),
    ];
    for (const s of cases) expect(() => decodeContext(s), s).toThrow(/^malformed context$/);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/)), (s) => {
        try {
          const c = decodeContext(s);
          // Whatever decodes must be a valid clock that re-encodes to a decodable token.
          expect(decodeContext(encodeContext(c))).toEqual(c);
        } catch (e) {
          expect((e as Error).message).toBe('malformed context');
        }
      }),
    );
  });
});

describe('liveValues / isDeleted / purgeableTombstones', () => {
  const live = ver('n1', 1, [], { ts: 100 });
  const tomb = ver('n2', 1, [], { ts: 200, tombstone: true });
  it('classifies', () => {
    expect(liveValues([live, tomb], 0)).toEqual([live]);
    expect(isDeleted([live, tomb], 0)).toBe(false);
    expect(isDeleted([tomb], 0)).toBe(true);
    expect(isDeleted([], 0)).toBe(true);
  });
  it('purges only all-tombstone sets older than the grace period', () => {
    expect(purgeableTombstones([tomb], 1000, 500)).toBe(true);
    expect(purgeableTombstones([tomb], 700, 500)).toBe(false); // exactly at grace: keep
    expect(purgeableTombstones([tomb, live], 10_000, 1)).toBe(false);
    expect(purgeableTombstones([tomb, { ...tomb, dot: ['n3', 1], clock: [['n3', 1]], ts: 900 }], 1000, 500)).toBe(false);
    expect(purgeableTombstones([], 0, 0)).toBe(true);
  });
});

describe('TTL', () => {
  const base: Version = { dot: ['a', 1], clock: [['a', 1]], prior: 0, ts: 1_000_000, tombstone: false, value: Uint8Array.of(7) };
  const timed: Version = { ...base, ttl: 10 };

  it('an expiring value reads as absent from ts + ttl on, and is purgeable once its write is older than grace', () => {
    expect(readableValues([timed], 10_999_999)).toHaveLength(1);
    expect(readableValues([timed], 11_000_000)).toHaveLength(0);
    expect(isDeleted([timed], 11_000_000)).toBe(true);
    expect(liveValues([timed, base], 11_000_000)).toEqual([base]);
    // Purgeable: expired, and written more than grace ago (Cassandra: an expired cell is a tombstone dated at its write).
    expect(purgeableTombstones([timed], 10_000_000, 1)).toBe(false); // not expired yet
    expect(purgeableTombstones([timed], 11_000_000, 5_000_000)).toBe(true);
    expect(purgeableTombstones([timed], 11_000_000, 20_000_000)).toBe(false);
  });

  it('LWW: on a timestamp tie an expiring value beats a live one, whatever the order', () => {
    const live: Version = { ...base, dot: ['b', 1], clock: [['b', 1]], value: Uint8Array.of(9) };
    expect(mergeLwwVersions([live], [timed])).toEqual([timed]);
    expect(mergeLwwVersions([timed], [live])).toEqual([timed]);
    expect(versionsEqual([timed], [base])).toBe(false);
  });
});

describe('DotCounter', () => {
  it('is strictly increasing, tracks the wall clock, honours floors', () => {
    let now = 1000; // ms
    const d = new DotCounter({ now: () => now });
    expect(d.next()).toBe(1_000_000);
    expect(d.next()).toBe(1_000_001); // same ms: +1
    now = 999; // clock stepped back
    expect(d.next()).toBe(1_000_002);
    now = 2000;
    expect(d.next()).toBe(2_000_000);
    expect(d.next(2_000_500)).toBe(2_000_501);
    expect(d.next(5)).toBe(2_000_502);
    d.observe(3_000_000);
    expect(d.next()).toBe(3_000_001);
    expect(d.highWater).toBe(3_000_001);
  });

  it('starts above a persisted floor', () => {
    const d = new DotCounter({ now: () => 1, floor: 50_000 });
    expect(d.next()).toBe(50_001);
    expect(() => new DotCounter({ floor: -1 })).toThrow();
  });

  it('refuses floors implausibly far ahead of the wall clock (forged contexts)', () => {
    const d = new DotCounter({ now: () => 1000, maxFloorLeadUs: 1_000_000 });
    expect(d.next(1_900_000)).toBe(1_900_001);
    expect(() => d.next(2 ** 53 - 1)).toThrow(RangeError);
    expect(d.next()).toBe(1_900_002); // a refused floor leaves the counter untouched
  });
});

describe('newVersion', () => {
  it('builds a clock that covers the dot and descends the context', () => {
    const v = ver('n2', 7, [['n1', 3], ['n3', 1]]);
    expect(v.dot).toEqual(['n2', 7]);
    expect(v.clock).toEqual([['n1', 3], ['n2', 7], ['n3', 1]]);
  });

  it('prunes the oldest entries but never its own dot', () => {
    const v = newVersion({
      node: 'a',
      counter: 1,
      context: [['b', 10], ['c', 5], ['d', 20]],
      ts: 1,
      tombstone: false,
      value: EMPTY,
      maxClockEntries: 2,
    });
    expect(v.clock).toEqual([['a', 1], ['d', 20]]);
    expect(vcCovers(v.clock, 'a', 1)).toBe(true);
  });

  it('asserts its preconditions', () => {
    const base = { node: 'n1', counter: 5, context: [] as VClock, ts: 1, tombstone: false, value: EMPTY, maxClockEntries: 10 };
    expect(() => newVersion({ ...base, context: [['n1', 5]] })).toThrow(/not above the context/);
    expect(() => newVersion({ ...base, tombstone: true, value: Uint8Array.of(1) })).toThrow(/tombstone/);
    expect(() => newVersion({ ...base, node: '' })).toThrow(/node/);
    expect(() => newVersion({ ...base, counter: 0 })).toThrow(/counter/);
    expect(() => newVersion({ ...base, ts: 1.5 })).toThrow(/ts/);
    expect(() => newVersion({ ...base, maxClockEntries: 0 })).toThrow(/maxEntries/);
  });
});
