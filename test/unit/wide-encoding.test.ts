import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CqlType, Order } from '../../src/cql/index.js';
import {
  clusteringRanges,
  decodeClustering,
  deserializePartitionKey,
  encodeClustering,
  rangeContains,
  serializePartitionKey,
  TimeuuidGenerator,
  timeuuidToMillis,
  uuidFromBytes,
  uuidToBytes,
  type ClusteringColumn,
  type ClusteringRestriction,
  type CqlValue,
} from '../../src/wide/index.js';

// ---- reference comparators (Cassandra's, written independently of the encodings) -------------

function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

function msbTimestamp(b: Uint8Array): bigint {
  const d = Buffer.from(b);
  return (BigInt(d.readUInt16BE(6) & 0x0fff) << 48n) | (BigInt(d.readUInt16BE(4)) << 32n) | BigInt(d.readUInt32BE(0));
}

/** Java's Double.compare: -0.0 < 0.0 (NaN is excluded from keys). */
function compareDoubles(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (Object.is(a, -0) && Object.is(b, 0)) return -1;
  if (Object.is(a, 0) && Object.is(b, -0)) return 1;
  return 0;
}

function referenceCompare(type: CqlType, a: CqlValue, b: CqlValue): number {
  switch (type) {
    case 'int':
    case 'timestamp':
      return sign((a as number) - (b as number));
    case 'bigint':
      return (a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0;
    case 'double':
    case 'float':
      return compareDoubles(a as number, b as number);
    case 'boolean':
      return sign(Number(a) - Number(b));
    case 'text':
      return sign(Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8')));
    case 'blob':
      return sign(Buffer.compare(a as Uint8Array, b as Uint8Array));
    case 'uuid': {
      // UUIDType: version first; v1 by timestamp, others by the high word; then the low word unsigned.
      const x = uuidToBytes(a as string);
      const y = uuidToBytes(b as string);
      const vx = x[6]! >> 4;
      const vy = y[6]! >> 4;
      if (vx !== vy) return sign(vx - vy);
      if (vx === 1) {
        const tx = msbTimestamp(x);
        const ty = msbTimestamp(y);
        if (tx !== ty) return tx < ty ? -1 : 1;
      } else {
        const c = Buffer.compare(x.subarray(0, 8), y.subarray(0, 8));
        if (c !== 0) return sign(c);
      }
      return sign(Buffer.compare(x.subarray(8), y.subarray(8)));
    }
    case 'timeuuid': {
      // TimeUUIDType: timestamp, then the low word's bytes as signed bytes.
      const x = uuidToBytes(a as string);
      const y = uuidToBytes(b as string);
      const tx = msbTimestamp(x);
      const ty = msbTimestamp(y);
      if (tx !== ty) return tx < ty ? -1 : 1;
      for (let i = 8; i < 16; i++) {
        const sx = (x[i]! << 24) >> 24;
        const sy = (y[i]! << 24) >> 24;
        if (sx !== sy) return sign(sx - sy);
      }
      return 0;
    }
    case 'counter':
      throw new Error('counters are not keys');
  }
}

// ---- value generators -------------------------------------------------------------------------

const interestingBytes = fc.oneof(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff), fc.integer({ min: 0, max: 255 }));
const bytesArb = fc.array(interestingBytes, { maxLength: 8 }).map((a) => Buffer.from(a));
const textArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.array(fc.constantFrom('\0', 'a', '\u00ff', '\uffff', '😀', '\u0001', ''), { maxLength: 5 }).map((a) => a.join('')));

function uuidArb(versions: number[]): fc.Arbitrary<string> {
  return fc.tuple(fc.array(interestingBytes, { minLength: 16, maxLength: 16 }), fc.constantFrom(...versions)).map(([b, v]) => {
    const u = Uint8Array.from(b);
    u[6] = (v << 4) | (u[6]! & 0x0f);
    return uuidFromBytes(u);
  });
}

const VALUE_ARBS: Record<Exclude<CqlType, 'counter'>, fc.Arbitrary<CqlValue>> = {
  int: fc.oneof(fc.constantFrom(-(2 ** 31), -1, 0, 1, 2 ** 31 - 1), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
  bigint: fc.oneof(fc.constantFrom(-(1n << 63n), -1n, 0n, 1n, (1n << 63n) - 1n), fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n })),
  timestamp: fc.oneof(fc.constantFrom(-8.64e15, -1, 0, 1, 8.64e15), fc.integer({ min: -8.64e15, max: 8.64e15 })),
  double: fc.oneof(fc.constantFrom(-Infinity, -0, 0, Infinity, Number.MIN_VALUE, -Number.MAX_VALUE), fc.double({ noNaN: true })),
  float: fc.oneof(fc.constantFrom(-Infinity, -0, 0, Infinity), fc.float({ noNaN: true })),
  boolean: fc.boolean(),
  text: textArb,
  blob: bytesArb,
  uuid: uuidArb([1, 2, 4, 7, 15, 0]),
  timeuuid: uuidArb([1]),
};
const KEY_TYPES = Object.keys(VALUE_ARBS) as Array<Exclude<CqlType, 'counter'>>;

function sameValue(type: CqlType, a: CqlValue, b: CqlValue): boolean {
  if (type === 'blob') return Buffer.compare(a as Uint8Array, b as Uint8Array) === 0;
  return Object.is(a, b);
}

describe('clustering order encoding', () => {
  for (const type of KEY_TYPES) {
    for (const order of ['asc', 'desc'] as Order[]) {
      it(`${type} ${order}: byte order equals value order, and decode inverts encode`, () => {
        const col: ClusteringColumn = { name: 'c', type, order };
        fc.assert(
          fc.property(VALUE_ARBS[type], VALUE_ARBS[type], (a, b) => {
            const ea = encodeClustering([col], [a]);
            const eb = encodeClustering([col], [b]);
            const expected = sign(referenceCompare(type, a, b) * (order === 'desc' ? -1 : 1));
            expect(sign(Buffer.compare(ea, eb))).toBe(expected);
            const [back] = decodeClustering([col], ea);
            expect(sameValue(type, back!, a)).toBe(true);
          }),
          { numRuns: 400 },
        );
      });
    }
  }

  it('refuses NaN as a key value', () => {
    expect(() => encodeClustering([{ name: 'c', type: 'double', order: 'asc' }], [NaN])).toThrow(/NaN is not allowed as a key value \("c" of type double\)/);
  });

  const columnArb = fc.record({ name: fc.constant('c'), type: fc.constantFrom(...KEY_TYPES), order: fc.constantFrom('asc' as const, 'desc' as const) });
  const keyOf = (cols: ClusteringColumn[]): fc.Arbitrary<CqlValue[]> => fc.tuple(...cols.map((c) => VALUE_ARBS[c.type as Exclude<CqlType, 'counter'>]));
  const tupleCompare = (cols: ClusteringColumn[], a: CqlValue[], b: CqlValue[]): number => {
    for (let i = 0; i < cols.length; i++) {
      const c = referenceCompare(cols[i]!.type, a[i]!, b[i]!) * (cols[i]!.order === 'desc' ? -1 : 1);
      if (c !== 0) return c;
    }
    return 0;
  };

  it('composite keys: byte order is the column-by-column order (each column in its direction) and keys are prefix-free', () => {
    fc.assert(
      fc.property(
        fc.array(columnArb, { minLength: 1, maxLength: 3 }).chain((cols) => fc.tuple(fc.constant(cols), keyOf(cols), keyOf(cols))),
        ([cols, a, b]) => {
          const ea = encodeClustering(cols, a);
          const eb = encodeClustering(cols, b);
          expect(sign(Buffer.compare(ea, eb))).toBe(tupleCompare(cols, a, b));
          if (Buffer.compare(ea, eb) !== 0) {
            const [s, l] = ea.length <= eb.length ? [ea, eb] : [eb, ea];
            expect(Buffer.compare(l.subarray(0, s.length), s) === 0).toBe(false);
          }
          expect(decodeClustering(cols, ea).every((v, i) => sameValue(cols[i]!.type, v, a[i]!))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('clustering ranges select exactly the keys a restriction (= / IN prefix, then a range) matches', () => {
    const scenario = fc
      .tuple(columnArb, columnArb)
      .chain((cols) =>
        fc.tuple(
          fc.constant(cols),
          fc.array(keyOf(cols), { minLength: 1, maxLength: 25 }),
          fc.nat(24),
          fc.nat(24),
          fc.nat(24),
          fc.constantFrom('none', 'eq', 'in'),
          fc.option(fc.tuple(fc.boolean(), fc.boolean())),
          fc.option(fc.tuple(fc.boolean(), fc.boolean())),
        ),
      );
    fc.assert(
      fc.property(scenario, ([cols, keys, i, j, k, prefixKind, lowerSpec, upperSpec]) => {
        const pick = (n: number): CqlValue[] => keys[n % keys.length]!;
        const restriction: ClusteringRestriction = { eq: [] };
        const eqValues = prefixKind === 'eq' ? [pick(i)[0]!] : prefixKind === 'in' ? [pick(i)[0]!, pick(j)[0]!] : [];
        if (prefixKind !== 'none') restriction.eq.push(eqValues);
        const rangeCol = prefixKind === 'none' ? 0 : 1;
        const range: NonNullable<ClusteringRestriction['range']> = { column: rangeCol };
        if (lowerSpec !== null && lowerSpec[0]) range.lower = { value: pick(j)[rangeCol]!, inclusive: lowerSpec[1] };
        if (upperSpec !== null && upperSpec[0]) range.upper = { value: pick(k)[rangeCol]!, inclusive: upperSpec[1] };
        if (range.lower !== undefined || range.upper !== undefined) restriction.range = range;
        const ranges = clusteringRanges(cols, restriction);
        // Ascending and disjoint.
        for (let r = 1; r < ranges.length; r++) expect(ranges[r - 1]!.end !== null && Buffer.compare(ranges[r - 1]!.end!, ranges[r]!.start) <= 0).toBe(true);
        for (const key of keys) {
          const bytes = encodeClustering(cols, key);
          const cmp = (x: CqlValue, y: CqlValue, c: ClusteringColumn): number => referenceCompare(c.type, x, y);
          let want = prefixKind === 'none' || eqValues.some((v) => cmp(key[0]!, v, cols[0]!) === 0);
          const rc = cols[rangeCol]!;
          if (range.lower !== undefined) {
            const c = cmp(key[rangeCol]!, range.lower.value, rc);
            want &&= range.lower.inclusive ? c >= 0 : c > 0;
          }
          if (range.upper !== undefined) {
            const c = cmp(key[rangeCol]!, range.upper.value, rc);
            want &&= range.upper.inclusive ? c <= 0 : c < 0;
          }
          expect(ranges.filter((r) => rangeContains(r, bytes)).length).toBe(want ? 1 : 0);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('partition key serialization', () => {
  it('round-trips single and composite keys and is unambiguous', () => {
    const colsArb = fc.array(fc.record({ name: fc.constantFrom('a', 'b', 'c'), type: fc.constantFrom(...KEY_TYPES) }), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(
        colsArb.chain((cols) => fc.tuple(fc.constant(cols), fc.tuple(...cols.map((c) => VALUE_ARBS[c.type as Exclude<CqlType, 'counter'>])), fc.tuple(...cols.map((c) => VALUE_ARBS[c.type as Exclude<CqlType, 'counter'>])))),
        ([cols, a, b]) => {
          const nonEmpty = (vals: CqlValue[]): boolean => cols.length > 1 || !((typeof vals[0] === 'string' && vals[0] === '') || (vals[0] instanceof Uint8Array && vals[0].length === 0));
          fc.pre(nonEmpty(a) && nonEmpty(b));
          const ka = serializePartitionKey(cols, a);
          const kb = serializePartitionKey(cols, b);
          const back = deserializePartitionKey(cols, ka);
          expect(back.every((v, i) => (Number.isNaN(v) && Number.isNaN(a[i])) || sameValue(cols[i]!.type, v, a[i]!))).toBe(true);
          const equal = a.every((v, i) => sameValue(cols[i]!.type, v, b[i]!));
          expect(Buffer.compare(ka, kb) === 0).toBe(equal);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses an empty single-column key and a null component', () => {
    expect(() => serializePartitionKey([{ name: 'k', type: 'text' }], [''])).toThrow(/Key may not be empty/);
    expect(() => serializePartitionKey([{ name: 'k', type: 'text' }, { name: 'j', type: 'int' }], ['a', null])).toThrow(/null value in condition for column j/);
  });
});

describe('timeuuid generator', () => {
  it('is monotonic within a millisecond and carries the time', () => {
    let now = Date.UTC(2023, 0, 1);
    const g = new TimeuuidGenerator({ nowMs: () => now, random: (n) => new Uint8Array(n).fill(7) });
    const col: ClusteringColumn = { name: 't', type: 'timeuuid', order: 'asc' };
    const a = uuidFromBytes(g.next());
    const b = uuidFromBytes(g.next());
    now += 1;
    const c = uuidFromBytes(g.next());
    now -= 5; // the clock went back: still increasing
    const d = uuidFromBytes(g.next());
    const enc = [a, b, c, d].map((u) => encodeClustering([col], [u]));
    for (let i = 1; i < enc.length; i++) expect(Buffer.compare(enc[i - 1]!, enc[i]!)).toBe(-1);
    expect(timeuuidToMillis(uuidToBytes(a))).toBe(Date.UTC(2023, 0, 1));
    expect(uuidToBytes(a)[6]! >> 4).toBe(1);
    expect(uuidToBytes(a)[8]! >> 6).toBe(2); // RFC 4122 variant
  });
});
