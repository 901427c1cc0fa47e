import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  applyToEncoded,
  CRDT_STATE_FORMAT,
  crdtApply,
  decodeCrdt,
  emptyCrdt,
  encodeCrdt,
  joinEncoded,
  parseOp,
  peekStateType,
  readEncoded,
  type CrdtState,
} from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { RECORD_FORMAT } from '../../src/versions/record.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** A state body packed by hand behind the header, as a corrupt disk or peer might hand it over. */
function raw(typeCode: number, body: unknown): Buffer {
  return Buffer.concat([Buffer.from([CRDT_STATE_FORMAT, typeCode]), packr.pack(body)]);
}

describe('CRDT state encoding', () => {
  it('pins the layout (a change here changes Merkle digests of stored states: bump CRDT_STATE_FORMAT)', () => {
    let set: CrdtState = emptyCrdt('set');
    set = crdtApply(set, { type: 'set', add: ['a', 'b'], remove: [] }, 'n1');
    set = crdtApply(set, { type: 'set', add: ['b'], remove: [] }, 'n2');
    // [clock [n1,1,n2,1], [[a, b], [1 dot: n1 1, 1 dot: n2 1]]]
    expect(encodeCrdt(set).toString('hex')).toBe('2002' + '92' + '94a26e3101a26e3201' + '92' + '92a161a162' + '96010001010101');
    const counter = crdtApply(emptyCrdt('counter'), { type: 'counter', increment: -3 }, 'n1');
    expect(encodeCrdt(counter).toString('hex')).toBe('2001' + '93a26e310003');
    expect(encodeCrdt(emptyCrdt('map')).toString('hex')).toBe('2003' + '929090');
    expect(CRDT_STATE_FORMAT).not.toBe(RECORD_FORMAT);
  });

  it('peekStateType reads the type from the header', () => {
    for (const t of ['counter', 'set', 'map', 'register', 'flag'] as const) expect(peekStateType(encodeCrdt(emptyCrdt(t)))).toBe(t);
  });

  const corrupt: [string, Buffer | Uint8Array][] = [
    ['too short', Buffer.from([CRDT_STATE_FORMAT, 2])],
    ['a record, not a state', Buffer.from([RECORD_FORMAT, 2, 0x90])],
    ['unknown type code', raw(9, [])],
    ['trailing bytes', Buffer.concat([raw(1, []), Buffer.from([0])])],
    ['counter actors out of order', raw(1, ['n2', 1, 0, 'n1', 1, 0])],
    ['counter entry of zeros', raw(1, ['n1', 0, 0])],
    ['negative total', raw(1, ['n1', -1, 0])],
    ['fractional total', raw(1, ['n1', 1.5, 0])],
    ['set clock unsorted', raw(2, [['n2', 1, 'n1', 1], []])],
    ['set element dot not covered', raw(2, [['n1', 1], [['a'], [1, 0, 2]]])],
    ['set actor index out of range', raw(2, [['n1', 1], [['a'], [1, 1, 1]]])],
    ['set element without dots', raw(2, [['n1', 1], [['a'], [0]]])],
    ['set element dot count past the end', raw(2, [['n1', 1], [['a'], [2, 0, 1]]])],
    ['set trailing dots', raw(2, [['n1', 1], [['a'], [1, 0, 1, 0]]])],
    ['set elements out of order', raw(2, [['n1', 2], [['b', 'a'], [1, 0, 1, 1, 0, 2]]])],
    ['set element dots duplicated', raw(2, [['n1', 2], [['a'], [2, 0, 1, 0, 1]]])],
    ['map field without type', raw(3, [['n1', 1], ['cart', [0, 1], []]])],
    ['map field stored empty', raw(3, [['n1', 1], ['a_set', [], [[], []]]])],
    ['map maps nested too deep', raw(3, [['n1', 1], deep(40)])],
    ['register without an entry body', raw(4, [1, 'n1'])],
    ['flag dots unsorted', raw(5, [['n1', 2], [0, 2, 0, 1]])],
  ];
  for (const [name, bytes] of corrupt) {
    it(`refuses corrupt input: ${name}`, () => {
      expect(() => decodeCrdt(bytes)).toThrow(/corrupt CRDT state/);
    });
  }
});

/** Map fields nested `n` deep: [name, dots, store] triples. */
function deep(n: number): unknown[] {
  let store: unknown[] = ['x_flag', [0, 1], [0, 1]];
  for (let i = 0; i < n; i++) store = ['m_map', [0, 1], store];
  return store;
}

describe('byte-level helpers for the integration', () => {
  it('joinEncoded returns the stored bytes when the incoming state adds nothing, the incoming ones when they cover it', () => {
    const a = applyToEncoded('set', undefined, parseOp('set', { add: ['x'] }), 'n1', 1).bytes;
    const b = applyToEncoded('set', a, parseOp('set', { add: ['y'] }), 'n1', 2).bytes;
    const c = applyToEncoded('set', undefined, parseOp('set', { add: ['z'] }), 'n2', 3).bytes;
    expect(joinEncoded(b, a)).toBe(b);
    expect(joinEncoded(a, b)).toBe(b);
    expect(joinEncoded(b, Buffer.from(b))).toBe(b);
    const bc = joinEncoded(b, c);
    expect(readEncoded('set', bc).value).toEqual(['x', 'y', 'z']);
    expect(Buffer.compare(Buffer.from(joinEncoded(c, b)), Buffer.from(bc))).toBe(0);
    expect(() => joinEncoded(a, encodeCrdt(emptyCrdt('counter')))).toThrow(/cannot join a (set|counter) state with a (set|counter) state/);
  });

  it('applyToEncoded refuses growth past crdt.maxStateBytes but allows shrinking', () => {
    const limits = crdtLimits({ maxStateBytes: 40 });
    let bytes = applyToEncoded('set', undefined, parseOp('set', { add: ['aaaaaaaaaa', 'bbbbbbbbbb'] }), 'n1', 1, limits).bytes;
    expect(bytes.length).toBeLessThanOrEqual(40);
    expect(() => applyToEncoded('set', bytes, parseOp('set', { add: ['cccccccccc'] }), 'n1', 2, limits)).toThrow(/crdt\.maxStateBytes \(40\)/);
    bytes = applyToEncoded('set', bytes, parseOp('set', { remove: ['aaaaaaaaaa'] }), 'n1', 3, limits).bytes;
    expect(readEncoded('set', bytes).value).toEqual(['bbbbbbbbbb']);
  });

  it('applyToEncoded refuses a stored state of another type', () => {
    const counter = encodeCrdt(emptyCrdt('counter'));
    expect(() => applyToEncoded('set', counter, parseOp('set', { add: ['x'] }), 'n1', 1)).toThrow(/stored state is a counter/);
  });

  it('readEncoded answers the empty value and context for an absent key', () => {
    expect(readEncoded('set', undefined)).toEqual({ value: [], context: '' });
    expect(readEncoded('map', undefined)).toEqual({ value: {}, context: '' });
    expect(readEncoded('flag', undefined)).toEqual({ value: false, context: '' });
    expect(readEncoded('register', undefined)).toEqual({ value: null, context: undefined });
  });
});
