import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  MAX_TTL_SECONDS,
  RECORD_FORMAT,
  decodeRecord,
  digestToHex,
  encodeRecord,
  hash64,
  initVersions,
  isDeadRecord,
  newVersion,
  recordDigest,
  versionsEqual,
  type VClockEntry,
  type Version,
} from '../../src/versions/index.js';

const NODES = ['a', 'b', 'c', 'node-ü-7'];

const counterArb = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER - 1000 }));

/**
 * Any version satisfying the invariants, including the rarer shapes newVersion never
 * makes (clock entry above the dot counter, e.g. after merging clocks by hand).
 */
const versionArb: fc.Arbitrary<Version> = fc
  .record({
    node: fc.constantFrom(...NODES),
    counter: counterArb,
    ahead: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 500 }) }),
    priorFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    ctx: fc.dictionary(fc.constantFrom(...NODES), counterArb, { maxKeys: 4 }),
    ts: fc.oneof(fc.constant(0), fc.maxSafeNat()),
    tombstone: fc.boolean(),
    value: fc.uint8Array({ maxLength: 40 }),
    ttl: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: MAX_TTL_SECONDS }) }),
  })
  .map(({ node, counter, ahead, priorFrac, ctx, ts, tombstone, value, ttl }) => {
    const own: VClockEntry = [node, counter + ahead];
    const clock = Object.entries(ctx)
      .filter(([n]) => n !== node)
      .map(([n, c]) => [n, c] as VClockEntry)
      .concat([own])
      .sort((x, y) => (x[0] < y[0] ? -1 : 1));
    const v: Version = {
      dot: ahead === 0 ? own : ([node, counter] as const),
      clock,
      prior: Math.floor(priorFrac * (counter - 1)),
      ts,
      tombstone,
      value: tombstone ? new Uint8Array(0) : value,
    };
    return tombstone || ttl === 0 ? v : { ...v, ttl };
  });

const recordArb = fc.uniqueArray(versionArb, { maxLength: 5, selector: (v) => `${v.dot[0]}:${v.dot[1]}` });

const byDot = (x: Version, y: Version): number =>
  x.dot[0] < y.dot[0] ? -1 : x.dot[0] > y.dot[0] ? 1 : x.dot[1] - y.dot[1];

describe('encodeRecord / decodeRecord', () => {
  it('round-trips byte-exactly, in canonical order', () => {
    fc.assert(
      fc.property(recordArb, (vs) => {
        const buf = encodeRecord(vs);
        expect(buf[0]).toBe(RECORD_FORMAT);
        const back = decodeRecord(buf);
        const sorted = vs.slice().sort(byDot);
        expect(versionsEqual(back, sorted)).toBe(true);
        back.forEach((v, i) => {
          expect(Buffer.compare(v.value, sorted[i]!.value)).toBe(0);
          expect(v.dot).toEqual(sorted[i]!.dot);
          expect(v.clock).toEqual(sorted[i]!.clock);
          expect(v.prior).toBe(sorted[i]!.prior);
          expect(v.ttl).toBe(sorted[i]!.ttl);
        });
        expect(encodeRecord(back).equals(buf)).toBe(true);
      }),
    );
  });

  it('encodes equal sets to equal bytes whatever the order', () => {
    fc.assert(
      fc.property(
        recordArb.chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: vs.length }))),
        ([vs, shuffled]) => {
          expect(encodeRecord(shuffled).equals(encodeRecord(vs))).toBe(true);
        },
      ),
    );
  });

  it('is compact for the common shape', () => {
    const v = newVersion({
      node: 'node-1',
      counter: 1_700_000_000_000_001,
      context: [['node-2', 1_700_000_000_000_000]],
      ts: 1_700_000_000_000_001,
      tombstone: false,
      value: Buffer.from('hello'),
      maxClockEntries: 10,
    });
    // format + array + [idx, nil, prior f64, ts f64, false, bin(5), clock of 2 pairs]
    expect(encodeRecord([v]).length).toBeLessThanOrEqual(60);
    // The dot is stored as an index into the clock and decoded as the shared entry tuple.
    const back = decodeRecord(encodeRecord([v]))[0]!;
    expect(back.clock).toContain(back.dot);
  });

  it('decoded values do not alias the input buffer', () => {
    const v: Version = { dot: ['a', 1], clock: [['a', 1]], prior: 0, ts: 1, tombstone: false, value: Uint8Array.of(1, 2, 3) };
    const buf = encodeRecord([v]);
    const back = decodeRecord(buf);
    buf.fill(0);
    expect(Array.from(back[0]!.value)).toEqual([1, 2, 3]);
  });

  it('stores a TTL as an eighth field only when there is one, and refuses a TTL on a tombstone or out of range', () => {
    const v: Version = { dot: ['a', 1], clock: [['a', 1]], prior: 0, ts: 1, tombstone: false, value: Uint8Array.of(1) };
    const plain = encodeRecord([v]);
    const timed = encodeRecord([{ ...v, ttl: 60 }]);
    expect(plain[2]).toBe(0x97); // a 7-tuple: records written before TTLs existed keep their bytes
    expect(timed[2]).toBe(0x98);
    expect(decodeRecord(timed)[0]!.ttl).toBe(60);
    expect(decodeRecord(plain)[0]!.ttl).toBeUndefined();
    expect(() => encodeRecord([{ ...v, ttl: MAX_TTL_SECONDS + 1 }])).toThrow(/ttl/);
    expect(() => encodeRecord([{ ...v, tombstone: true, value: new Uint8Array(0), ttl: 5 }])).toThrow(/ttl/);
  });

  it('handles the empty set', () => {
    expect(decodeRecord(encodeRecord([]))).toEqual([]);
  });

  it('refuses to encode broken invariants', () => {
    const v: Version = { dot: ['a', 5], clock: [['a', 5]], prior: 0, ts: 1, tombstone: false, value: Uint8Array.of(1) };
    expect(() => encodeRecord([v, { ...v }])).toThrow(/duplicate dot/);
    expect(() => encodeRecord([{ ...v, clock: [['a', 4]] }])).toThrow(/cover/);
    expect(() => encodeRecord([{ ...v, clock: [['b', 9]] }])).toThrow(/cover/);
    expect(() => encodeRecord([{ ...v, prior: 5 }])).toThrow(/prior/);
    expect(() => encodeRecord([{ ...v, tombstone: true }])).toThrow(/tombstone/);
  });
});

describe('isDeadRecord', () => {
  it('agrees with decoding: true exactly when every version is a tombstone or expiring (byte path for one version)', () => {
    fc.assert(
      fc.property(recordArb, (vs) => {
        fc.pre(vs.length > 0);
        expect(isDeadRecord(encodeRecord(vs))).toBe(vs.every((v) => v.tombstone || (v.ttl ?? 0) > 0));
      }),
      { numRuns: 2000 },
    );
  });

  it('reads the flag of one-version records whatever sizes their counters and timestamps take', () => {
    for (const counter of [1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER - 1]) {
      for (const ts of [0, 1, 1_796_218_588_123_456, Number.MAX_SAFE_INTEGER]) {
        for (const tombstone of [true, false]) {
          const v: Version = { dot: ['n', counter], clock: [['n', counter]], prior: counter - 1, ts, tombstone, value: tombstone ? new Uint8Array(0) : new Uint8Array([1, 2]) };
          expect(isDeadRecord(encodeRecord([v]))).toBe(tombstone);
        }
      }
    }
  });

  it('throws on a corrupt record rather than guessing', () => {
    expect(() => isDeadRecord(Uint8Array.from([RECORD_FORMAT, 0x91, 0x97, 0xc1]))).toThrow(/corrupt record/);
  });
});

describe('decodeRecord on corrupt input', () => {
  const good = encodeRecord([
    { dot: ['a', 5], clock: [['a', 5], ['b', 2]], prior: 1, ts: 10, tombstone: false, value: Uint8Array.of(1, 0, 7) },
    { dot: ['b', 7], clock: [['b', 9]], prior: 0, ts: 11, tombstone: true, value: new Uint8Array(0) },
  ]);

  it('rejects short, unknown-format, truncated and padded buffers', () => {
    expect(() => decodeRecord(new Uint8Array(0))).toThrow(/corrupt record/);
    expect(() => decodeRecord(Uint8Array.of(RECORD_FORMAT))).toThrow(/corrupt record/);
    expect(() => decodeRecord(Buffer.concat([Buffer.of(99), good.subarray(1)]))).toThrow(/format/);
    for (let n = 0; n < good.length; n++) expect(() => decodeRecord(good.subarray(0, n))).toThrow(/corrupt record/);
    expect(() => decodeRecord(Buffer.concat([good, Buffer.of(0)]))).toThrow(/corrupt record/);
  });

  it('either throws an Error or yields a record that satisfies every invariant', () => {
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
        const bad = Buffer.from(good);
        bad[pos]! ^= xor;
        let decoded: Version[] | undefined;
        try {
          decoded = decodeRecord(bad);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toMatch(/^corrupt record/);
        }
        if (decoded !== undefined) expect(() => encodeRecord(decoded)).not.toThrow();
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const buf = Buffer.concat([Buffer.of(RECORD_FORMAT), bytes]);
        try {
          encodeRecord(decodeRecord(buf));
        } catch (e) {
          expect((e as Error).message).toMatch(/^corrupt record/);
        }
      }),
    );
  });

  const raw = new Packr({ useRecords: false });
  const frame = (body: unknown): Buffer => Buffer.concat([Buffer.of(RECORD_FORMAT), raw.pack(body)]);
  const bin = Buffer.of(1);
  it.each<[string, unknown]>([
    ['body not an array', { a: 1 }],
    ['short tuple', [[0, null, 0, 1, false, bin]]],
    ['dot index out of range', [[1, null, 0, 1, false, bin, [['a', 1]]]]],
    ['unsorted clock', [[0, null, 0, 1, false, bin, [['b', 1], ['a', 1]]]]],
    ['zero counter in clock', [[0, null, 0, 1, false, bin, [['a', 0]]]]],
    ['dot counter above its clock entry', [[0, 5, 0, 1, false, bin, [['a', 4]]]]],
    ['prior not below the dot', [[0, null, 4, 1, false, bin, [['a', 4]]]]],
    ['negative ts', [[0, null, 0, -1, false, bin, [['a', 1]]]]],
    ['fractional ts', [[0, null, 0, 1.5, false, bin, [['a', 1]]]]],
    ['tombstone flag not boolean', [[0, null, 0, 1, 0, bin, [['a', 1]]]]],
    ['value not binary', [[0, null, 0, 1, false, 'x', [['a', 1]]]]],
    ['tombstone with a value', [[0, null, 0, 1, true, bin, [['a', 1]]]]],
    ['dots out of order', [[0, null, 0, 1, false, bin, [['b', 1]]], [0, null, 0, 1, false, bin, [['a', 1]]]]],
    ['duplicate dots', [[0, null, 0, 1, false, bin, [['a', 1]]], [0, null, 0, 2, false, bin, [['a', 1]]]]],
  ])('rejects %s', (_name, body) => {
    expect(() => decodeRecord(frame(body))).toThrow(/^corrupt record/);
  });
});

describe('recordDigest', () => {
  it('throws until initVersions() has been awaited', () => {
    expect(() => recordDigest([])).toThrow(/initVersions/);
  });

  it('initialises once', async () => {
    const p = initVersions();
    expect(initVersions()).toBe(p);
    await p;
  });

  it('is xxh64 split into uint32 halves', () => {
    // Reference vector: XXH64("", seed 0) = ef46db3751d8e999.
    const d = hash64(new Uint8Array(0));
    expect(d).toEqual({ hi: 0xef46db37, lo: 0x51d8e999 });
    expect(digestToHex(d)).toBe('ef46db3751d8e999');
    expect(digestToHex({ hi: 1, lo: 2 })).toBe('0000000100000002');
  });

  it('is equal for equal sets in any order and differs for different sets', () => {
    fc.assert(
      fc.property(
        recordArb.chain((vs) => fc.tuple(fc.constant(vs), fc.shuffledSubarray(vs, { minLength: vs.length }))),
        recordArb,
        ([vs, shuffled], other) => {
          expect(recordDigest(shuffled)).toEqual(recordDigest(vs));
          if (!encodeRecord(other).equals(encodeRecord(vs))) expect(recordDigest(other)).not.toEqual(recordDigest(vs));
        },
      ),
    );
  });
});
