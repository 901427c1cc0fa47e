import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { fastDecodeRequest } from '../../src/api/ipc-fast-decode.js';
import { checkRequestShape, decodeRequest } from '../../src/api/ipc-request.js';

// What clients send (useRecords off), and what the full path decodes with.
const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

const FIELDS = ['table', 'key', 'value', 'context', 'consistency', 'n', 'w', 'r', 'timeoutMs', 'ttl', 'op'];
const scalar = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: -(2 ** 31), max: -1 }),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constant(null),
  fc.boolean(),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom('put', 'get', 'del', 'batch', 'scan', 'QUORUM'),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
);
const itemArb = fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 6 })), scalar, { maxKeys: 8 });
const requestArb = fc.record(
  {
    id: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.double()),
    op: fc.constantFrom('put', 'get', 'del', 'batch', 'ring', 'scan'),
    table: scalar,
    key: scalar,
    value: scalar,
    consistency: scalar,
    w: scalar,
    timeoutMs: scalar,
    items: fc.oneof(fc.array(itemArb, { maxLength: 20 }), scalar),
    limit: scalar,
  },
  { requiredKeys: [] },
);

/** A payload with a non-str key, an ext or invalid UTF-8 spliced in (what only the full path may judge). */
const oddPayloads = [
  Buffer.from([0x82, 0xa2, 0x69, 0x64, 0x01, 0x01, 0x02]), // {id: 1, 1: 2}
  Buffer.from([0x82, 0xa2, 0x69, 0x64, 0x01, 0xa2, 0x6f, 0x70, 0xa2, 0xff, 0xfe]), // op: invalid UTF-8
  Buffer.from([0x81, 0xa2, 0x69, 0x64, 0xd4, 0x01, 0x02]), // id: fixext
  Buffer.from([0x81, 0xa2, 0x69, 0x64, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0]), // id: uint64
  Buffer.from([0x81, 0xa2, 0x69, 0x64]), // truncated
  Buffer.from([0x81, 0xa2, 0x69, 0x64, 0x01, 0x01]), // trailing byte
];

describe('fast IPC request decode', () => {
  it('decodes exactly what msgpackr decodes, and only frames the shape check finds nothing wrong with', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const payload = packr.pack(req);
        const fast = fastDecodeRequest(payload);
        if (fast === null) return;
        expect(checkRequestShape(payload, 100)).toEqual([]);
        expect(fast).toEqual(unpackr.unpack(payload));
      }),
      { numRuns: 2000 },
    );
  });

  it('takes the common well-formed put / get / del / batch frames', () => {
    const value = Buffer.alloc(100, 7);
    const frames = [
      { id: 1, op: 'put', table: 'bench', key: 'user:1', value, consistency: 'QUORUM', timeoutMs: 500 },
      { id: 2, op: 'get', table: 'bench', key: Buffer.from('k'), r: 2 },
      { id: 3, op: 'del', table: 'bench', key: 'k', context: 'abc', ttl: null },
      { id: 0xffffffff, op: 'batch', timeoutMs: 1000, items: Array.from({ length: 100 }, (_, i) => ({ op: 'put', table: 'bench', key: `k${i}`, value })) },
    ];
    for (const f of frames) {
      const payload = packr.pack(f);
      const fast = fastDecodeRequest(payload);
      expect(fast).not.toBeNull();
      expect(fast).toEqual(unpackr.unpack(payload));
    }
  });

  it('leaves floats, big or negative ints, unknown or non-str keys, ext, invalid UTF-8, truncation and trailing bytes to the full path', () => {
    for (const f of [
      { id: 1, op: 'put', table: 't', key: 'k', value: 'v', w: 1.5 },
      { id: 1, op: 'put', table: 't', key: 'k', value: 'v', ttl: 2 ** 40 },
      { id: 1, op: 'put', table: 't', key: 'k', value: 'v', n: -1 },
      { id: 1, op: 'put', table: 't', key: 'k', value: 'v', future: 1 },
      { id: 1, op: 'batch', items: [{ op: 'put', table: 't', key: 'k', value: 'v', id: 3 }] },
      { id: 1, op: 'batch', items: [{ op: 'put', items: [] }] },
    ]) {
      expect(fastDecodeRequest(packr.pack(f))).toBeNull();
    }
    for (const p of oddPayloads) expect(fastDecodeRequest(p)).toBeNull();
  });

  it('the server decoder still names the field at fault when the fast path declines (issue 10 item 9)', () => {
    const bad = decodeRequest(packr.pack({ id: 1, op: 'put', table: 't', key: 'k', value: 'v', w: 1.5 }), 10);
    expect(bad.problems.map((p) => p.path)).toEqual([['w']]);
    const big = decodeRequest(Buffer.from([0x82, 0xa2, 0x69, 0x64, 0x01, 0xa1, 0x77, 0xcf, 0x00, 0x40, 0, 0, 0, 0, 0, 0]), 10);
    expect(big.problems[0]!.message).toMatch(/beyond \+-2\^53/);
    expect(() => decodeRequest(Buffer.from([0x81, 0xa2, 0x69, 0x64]), 10)).toThrow(/not valid msgpack/);
  });
});
