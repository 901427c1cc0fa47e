import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  be8,
  decodeStorageKey,
  encodeStorageKey,
  MIN_STORAGE_KEY_BYTES,
  partitionPrefix,
  prefixBounds,
  storageKeyHasTable,
  TABLE_ID_BYTES,
  tableIdOfStorageKey,
  tokenRangeBounds,
  type KeyBounds,
} from '../../src/storage/keys.js';

const MAX = 0xffffffff;
const MAX64 = (1n << 64n) - 1n;

// Bytes biased towards the escape-relevant values so escaping and terminator edge cases
// (0x00, 0xFF, prefixes) show up in almost every run.
const bytesArb = fc
  .array(fc.oneof(fc.constantFrom(0x00, 0x01, 0xff, 0xfe), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
  .map((a) => Uint8Array.from(a));

const u32 = fc.oneof(fc.constantFrom(0, 1, MAX - 1, MAX), fc.integer({ min: 0, max: MAX }));
const tokenArb = fc.tuple(u32, u32);
/** 16-byte table ids, often sharing a prefix (so ordering past the first byte is exercised). */
const tableArb = fc
  .tuple(fc.constantFrom(0x00, 0x7f, 0xff), fc.uint8Array({ minLength: TABLE_ID_BYTES - 1, maxLength: TABLE_ID_BYTES - 1 }))
  .map(([first, rest]) => Buffer.concat([Buffer.of(first), rest]));
const id = (...bytes: number[]): Buffer => Buffer.concat([Buffer.from(bytes), Buffer.alloc(TABLE_ID_BYTES - bytes.length)]);

const toBig = ([hi, lo]: readonly [number, number]): bigint => (BigInt(hi) << 32n) | BigInt(lo);
const lexCmp = (a: Uint8Array, b: Uint8Array): number => Math.sign(Buffer.compare(a, b));

function within(key: Buffer, b: KeyBounds): boolean {
  return (
    (b.gt === undefined || Buffer.compare(key, b.gt) > 0) &&
    (b.gte === undefined || Buffer.compare(key, b.gte) >= 0) &&
    (b.lt === undefined || Buffer.compare(key, b.lt) < 0) &&
    (b.lte === undefined || Buffer.compare(key, b.lte) <= 0)
  );
}

describe('encodeStorageKey / decodeStorageKey', () => {
  it('round-trips', () => {
    fc.assert(
      fc.property(tokenArb, tableArb, bytesArb, fc.option(bytesArb), ([hi, lo], table, pk, ck) => {
        const key = encodeStorageKey(hi, lo, table, pk, ck ?? undefined);
        const d = decodeStorageKey(key);
        expect(d.tokenHi).toBe(hi);
        expect(d.tokenLo).toBe(lo);
        expect(d.tableId.equals(table)).toBe(true);
        expect(tableIdOfStorageKey(key).equals(table)).toBe(true);
        expect(storageKeyHasTable(key, table)).toBe(true);
        expect(Buffer.compare(d.partitionKey, pk)).toBe(0);
        expect(Buffer.compare(d.clustering, ck ?? new Uint8Array(0))).toBe(0);
        expect(key.subarray(0, 8).equals(be8(hi, lo))).toBe(true);
        // decode ∘ encode is also the identity on the byte side.
        expect(encodeStorageKey(d.tokenHi, d.tokenLo, d.tableId, d.partitionKey, d.clustering).equals(key)).toBe(true);
      }),
    );
  });

  it('orders keys of one token+table exactly like (partitionKey, clustering)', () => {
    fc.assert(
      fc.property(tokenArb, tableArb, bytesArb, bytesArb, bytesArb, bytesArb, ([hi, lo], t, p1, c1, p2, c2) => {
        const k1 = encodeStorageKey(hi, lo, t, p1, c1);
        const k2 = encodeStorageKey(hi, lo, t, p2, c2);
        const expected = lexCmp(p1, p2) || lexCmp(c1, c2);
        expect(lexCmp(k1, k2)).toBe(expected);
      }),
    );
  });

  it('orders by token, then table, before anything else', () => {
    fc.assert(
      fc.property(tokenArb, tokenArb, tableArb, tableArb, bytesArb, bytesArb, (t1, t2, tab1, tab2, p1, p2) => {
        const k1 = encodeStorageKey(t1[0], t1[1], tab1, p1, p2);
        const k2 = encodeStorageKey(t2[0], t2[1], tab2, p2, p1);
        const tokenOrder = Math.sign(Number(toBig(t1) - toBig(t2)));
        if (tokenOrder !== 0) expect(lexCmp(k1, k2)).toBe(tokenOrder);
        else if (!tab1.equals(tab2)) {
          expect(lexCmp(k1, k2)).toBe(lexCmp(tab1, tab2));
          expect(storageKeyHasTable(k1, tab2)).toBe(false);
        }
      }),
    );
  });

  it('keeps distinct rows distinct where a 1-byte terminator would collide', () => {
    // (pk "a", ck FF 00 58) vs (pk "a\0", ck 58): both are 61 00 FF 00 58 with a single 0x00 terminator.
    const k1 = encodeStorageKey(0, 0, id(1), Buffer.from('a'), Uint8Array.of(0xff, 0x00, 0x58));
    const k2 = encodeStorageKey(0, 0, id(1), Buffer.from('a\0'), Uint8Array.of(0x58));
    expect(k1.equals(k2)).toBe(false);
    expect(lexCmp(k1, k2)).toBe(-1);
    expect(decodeStorageKey(k1).clustering).toEqual(Buffer.of(0xff, 0x00, 0x58));
  });

  it('has the documented layout', () => {
    const table = Buffer.from('0a0b0c0d0e0f101112131415161718ff', 'hex');
    const k = encodeStorageKey(0x01020304, 0x05060708, table, Uint8Array.of(0x61, 0x00, 0x62), Uint8Array.of(0x00, 0xff));
    expect(k.toString('hex')).toBe('0102030405060708' + '0a0b0c0d0e0f101112131415161718ff' + '6100ff62' + '0000' + '00ff');
    expect(encodeStorageKey(0, 0, id(), new Uint8Array(0)).toString('hex')).toBe('00'.repeat(24) + '0000');
    expect(MIN_STORAGE_KEY_BYTES).toBe(26);
  });

  it('rejects malformed keys and out-of-range numbers', () => {
    const ok = encodeStorageKey(1, 2, id(3), Buffer.from('pk'));
    expect(() => decodeStorageKey(ok.subarray(0, 25))).toThrow(/malformed/);
    expect(() => decodeStorageKey(ok.subarray(0, ok.length - 1))).toThrow(/unterminated/);
    expect(() => decodeStorageKey(Buffer.concat([ok.subarray(0, 24), Buffer.from('pk')]))).toThrow(/unterminated/);
    expect(() => decodeStorageKey(Buffer.concat([ok.subarray(0, 24), Buffer.of(0x61, 0x00, 0x05, 0x00, 0x00)]))).toThrow(/escape/);
    expect(() => encodeStorageKey(-1, 0, id(), new Uint8Array(0))).toThrow(RangeError);
    expect(() => encodeStorageKey(0, 2 ** 32, id(), new Uint8Array(0))).toThrow(RangeError);
    // A table id of another width (format 1 had 4 bytes) is refused, never written short.
    expect(() => encodeStorageKey(0, 0, Buffer.alloc(4), new Uint8Array(0))).toThrow(/16 bytes/);
    expect(() => encodeStorageKey(0, 0, 7 as unknown as Uint8Array, new Uint8Array(0))).toThrow(RangeError);
    expect(() => tableIdOfStorageKey(ok.subarray(0, 20))).toThrow(RangeError);
    expect(storageKeyHasTable(ok.subarray(0, 20), id(3))).toBe(false);
    expect(() => be8(0, -1)).toThrow(RangeError);
  });

  it('decodes plain Uint8Arrays too', () => {
    const k = encodeStorageKey(7, 8, id(9), Uint8Array.of(0, 1), Uint8Array.of(2));
    const d = decodeStorageKey(new Uint8Array(k));
    expect([d.tokenHi, d.tokenLo]).toEqual([7, 8]);
    expect(d.tableId.equals(id(9))).toBe(true);
    expect(d.partitionKey).toEqual(Buffer.of(0, 1));
  });
});

describe('tokenRangeBounds', () => {
  // Tokens near the ring's edges and carry boundaries, plus anything.
  const edge = fc.oneof(
    fc.constantFrom<[number, number]>([0, 0], [0, 1], [0, MAX], [1, 0], [MAX, MAX - 1], [MAX, MAX], [5, 5], [5, 6]),
    tokenArb,
  );

  it('covers exactly the keys whose token is in (start, end]', () => {
    fc.assert(
      fc.property(edge, edge, edge, tableArb, bytesArb, bytesArb, (s, e, t, table, pk, ck) => {
        const bounds = tokenRangeBounds(s[0], s[1], e[0], e[1]);
        const [bs, be, bt] = [toBig(s), toBig(e), toBig(t)];
        const inRange = bs === be ? true : bs < be ? bt > bs && bt <= be : bt > bs || bt <= be;
        const key = encodeStorageKey(t[0], t[1], table, pk, ck);
        const hits = bounds.filter((b) => within(key, b)).length;
        expect(hits).toBe(inRange ? 1 : 0);
        // The bare token prefix, the first and (almost) last keys of a token behave the same.
        expect(bounds.some((b) => within(Buffer.concat([be8(t[0], t[1]), Buffer.alloc(26, 0xff)]), b))).toBe(inRange);
      }),
    );
  });

  it('returns ascending, non-overlapping intervals', () => {
    fc.assert(
      fc.property(edge, edge, (s, e) => {
        const bounds = tokenRangeBounds(s[0], s[1], e[0], e[1]);
        expect(bounds.length).toBeGreaterThanOrEqual(1);
        expect(bounds.length).toBeLessThanOrEqual(2);
        if (bounds.length === 2) expect(Buffer.compare(bounds[0]!.lt!, bounds[1]!.gte!)).toBeLessThanOrEqual(0);
        for (const b of bounds) if (b.gte && b.lt) expect(Buffer.compare(b.gte, b.lt)).toBe(-1);
      }),
    );
  });

  it('handles the special cases', () => {
    expect(tokenRangeBounds(3, 3, 3, 3)).toEqual([{}]);
    expect(tokenRangeBounds(0, 0, 0, 9)).toEqual([{ gte: be8(0, 1), lt: be8(0, 10) }]);
    expect(tokenRangeBounds(0, MAX, 1, MAX)).toEqual([{ gte: be8(1, 0), lt: be8(2, 0) }]);
    expect(tokenRangeBounds(0, 0, MAX, MAX)).toEqual([{ gte: be8(0, 1) }]);
    expect(tokenRangeBounds(MAX, MAX, 0, 5)).toEqual([{ lt: be8(0, 6) }]);
    expect(tokenRangeBounds(MAX, 0, 0, 5)).toEqual([{ lt: be8(0, 6) }, { gte: be8(MAX, 1) }]);
    expect(MAX64).toBe(toBig([MAX, MAX]));
  });
});

describe('partition prefixes', () => {
  it('bound exactly the rows of one partition', () => {
    fc.assert(
      fc.property(tokenArb, tableArb, bytesArb, bytesArb, bytesArb, ([hi, lo], t, pk, other, ck) => {
        const b = prefixBounds(partitionPrefix(hi, lo, t, pk));
        expect(within(encodeStorageKey(hi, lo, t, pk, ck), b)).toBe(true);
        const same = Buffer.compare(pk, other) === 0;
        expect(within(encodeStorageKey(hi, lo, t, other, ck), b)).toBe(same);
      }),
    );
  });

  it('handles an all-0xFF prefix', () => {
    expect(prefixBounds(Buffer.of(0xff, 0xff))).toEqual({ gte: Buffer.of(0xff, 0xff) });
    expect(prefixBounds(Buffer.of(0x01, 0xff))).toEqual({ gte: Buffer.of(0x01, 0xff), lt: Buffer.of(0x02) });
  });
});
