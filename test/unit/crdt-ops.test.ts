import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { crdtApply, crdtContext, emptyCrdt, parseOp, type CrdtType } from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { RingkvError } from '../../src/util/errors.js';

function error(type: CrdtType, body: unknown, limits = crdtLimits()): { code: string; message: string; path?: unknown; limit?: unknown } {
  try {
    parseOp(type, body, limits);
  } catch (e) {
    if (!(e instanceof RingkvError)) throw e;
    return { code: e.code, message: e.message, path: e.details?.['path'], limit: e.details?.['limit'] };
  }
  throw new Error('expected an error');
}

describe('parseOp: the issue shapes', () => {
  it('counters: increment (negative allowed) and decrement', () => {
    expect(parseOp('counter', { increment: 5 }).op).toEqual({ type: 'counter', increment: 5 });
    expect(parseOp('counter', { increment: -2 }).op).toEqual({ type: 'counter', increment: -2 });
    expect(parseOp('counter', { decrement: 3 }).op).toEqual({ type: 'counter', increment: -3 });
    expect(parseOp('counter', { decrement: 0 }).op).toEqual({ type: 'counter', increment: 0 });
  });

  it('sets: add and remove lists come back sorted and duplicate-free, with the context decoded', () => {
    const ctx = crdtContext(crdtApply(emptyCrdt('set'), { type: 'set', add: ['c'], remove: [] }, 'n1'))!;
    const p = parseOp('set', { add: ['b', 'a', 'b'], remove: ['c'], context: ctx });
    expect(p.op).toEqual({ type: 'set', add: ['a', 'b'], remove: ['c'] });
    expect(p.context).toEqual([['n1', 1]]);
  });

  it('registers and flags', () => {
    expect(parseOp('register', { assign: 'v' }).op).toEqual({ type: 'register', assign: 'v' });
    expect(parseOp('flag', { enable: true }).op).toEqual({ type: 'flag', enable: true });
    expect(parseOp('flag', { disable: true, context: '' })).toEqual({ op: { type: 'flag', enable: false }, context: [] });
  });

  it('maps: the explicit form and the nested shorthand parse to the same op', () => {
    const body = {
      update: { cart_map: { items_set: { add: ['book'] } }, total_counter: { increment: 12 } },
      remove: ['old_register'],
    };
    const explicitNested = {
      update: { cart_map: { update: { items_set: { add: ['book'] } } }, total_counter: { increment: 12 } },
      remove: ['old_register'],
    };
    const expected = {
      type: 'map',
      update: [
        ['cart_map', { type: 'map', update: [['items_set', { type: 'set', add: ['book'], remove: [] }]], remove: [] }],
        ['total_counter', { type: 'counter', increment: 12 }],
      ],
      remove: ['old_register'],
    };
    expect(parseOp('map', body).op).toEqual(expected);
    expect(parseOp('map', explicitNested).op).toEqual(expected);
  });

  it('accepts msgpack-decoded IPC values, including 64-bit integers', () => {
    const packr = new Packr({ useRecords: false, mapsAsObjects: true, useBigInt64: true, int64AsType: 'bigint' });
    const body = packr.unpack(packr.pack({ increment: 2n ** 40n }));
    expect(parseOp('counter', body).op).toEqual({ type: 'counter', increment: 2 ** 40 });
    expect(error('counter', { increment: 2n ** 60n })).toMatchObject({ code: 'bad_request', path: 'increment' });
  });
});

describe('parseOp: errors name the path of the bad field', () => {
  const cases: [string, CrdtType, unknown, string, RegExp][] = [
    ['non-object', 'counter', [1], '', /operation: a counter operation must be a JSON object/],
    ['both increment and decrement', 'counter', { increment: 1, decrement: 1 }, '', /exactly one of/],
    ['fractional increment', 'counter', { increment: 1.5 }, 'increment', /^increment: must be an integer/],
    ['unknown field', 'counter', { incr: 1 }, 'incr', /^incr: unknown field; a counter operation takes "increment" or "decrement"/],
    ['counter context', 'counter', { increment: 1, context: '' }, 'context', /counter operations take no context/],
    ['empty set op', 'set', { add: [] }, '', /needs elements/],
    ['non-string element', 'set', { add: ['a', 7] }, 'add[1]', /^add\[1\]: element must be a string/],
    ['binary element', 'set', { add: [new Uint8Array(2)] }, 'add[0]', /binary values are not supported/],
    ['add and remove one element', 'set', { add: ['a'], remove: ['a'] }, '', /both updated\/added and removed/],
    ['malformed context', 'set', { remove: ['a'], context: 'not!base64' }, 'context', /malformed context/],
    ['context of the wrong shape', 'set', { remove: ['a'], context: 'kQ' }, 'context', /malformed context/],
    ['register number', 'register', { assign: 5 }, 'assign', /^assign: must be a string/],
    ['enable false', 'flag', { enable: false }, 'enable', /must be true/],
    ['enable and disable', 'flag', { enable: true, disable: true }, '', /\{"enable": true\} or \{"disable": true\}/],
    ['untyped field', 'map', { update: { cart: { increment: 1 } } }, 'update.cart', /names are name_type/],
    ['nested bad element', 'map', { update: { cart_map: { items_set: { add: [1] } } } }, 'update.cart_map.items_set.add[0]', /element must be a string/],
    ['nested explicit bad', 'map', { update: { cart_map: { update: { n_counter: { increment: 'x' } } } } }, 'update.cart_map.update.n_counter.increment', /integer/],
    ['wrong op for the type', 'map', { update: { total_counter: { add: ['a'] } } }, 'update.total_counter.add', /a counter operation takes/],
    ['nested context', 'map', { update: { s_set: { remove: ['a'], context: '' } } }, 'update.s_set.context', /only at the top level/],
    ['update and remove one field', 'map', { update: { a_flag: { enable: true } }, remove: ['a_flag'] }, '', /both updated\/added and removed/],
    ['bad removed field', 'map', { remove: ['nope'] }, 'remove[0]', /names are name_type/],
    ['empty map op', 'map', { update: {} }, '', /needs fields/],
    ['mixed explicit and shorthand', 'map', { update: {}, a_flag: { enable: true } }, 'a_flag', /unknown field; a map operation takes "update" or "remove"/],
  ];
  for (const [name, type, body, path, message] of cases) {
    it(name, () => {
      const e = error(type, body);
      expect(e.code).toBe('bad_request');
      expect(e.path).toBe(path);
      expect(e.message).toMatch(message);
    });
  }
});

describe('parseOp: limits (413 naming the config key)', () => {
  it('element, field name and register sizes', () => {
    const limits = crdtLimits({ maxElementBytes: 3, maxFieldNameBytes: 8, maxRegisterBytes: 2 });
    expect(error('set', { add: ['abc', 'abcd'] }, limits)).toMatchObject({ code: 'too_large', path: 'add[1]', limit: 'crdt.maxElementBytes' });
    expect(error('set', { add: ['éé'] }, limits)).toMatchObject({ limit: 'crdt.maxElementBytes' }); // 4 UTF-8 bytes
    expect(error('map', { update: { long_counter: { increment: 1 } } }, limits)).toMatchObject({ path: 'update.long_counter', limit: 'crdt.maxFieldNameBytes' });
    expect(error('register', { assign: 'abc' }, limits)).toMatchObject({ path: 'assign', limit: 'crdt.maxRegisterBytes' });
  });

  it('elements and fields per operation, and nesting depth', () => {
    const limits = crdtLimits({ maxOpEntries: 3, maxMapDepth: 2 });
    expect(error('set', { add: ['a', 'b'], remove: ['c', 'd'] }, limits)).toMatchObject({ path: 'remove', limit: 'crdt.maxOpEntries' });
    expect(error('map', { update: { a_map: { b_set: { add: ['x', 'y'] } } } }, limits)).toMatchObject({ limit: 'crdt.maxOpEntries' });
    expect(error('map', { update: { a_map: { b_map: { c_flag: { enable: true } } } } }, limits)).toMatchObject({
      path: 'update.a_map.b_map',
      limit: 'crdt.maxMapDepth',
    });
  });

  it('a context with more actors than crdt.maxActors', () => {
    const limits = crdtLimits({ maxActors: 1 });
    let s = emptyCrdt('set');
    s = crdtApply(s, { type: 'set', add: ['a'], remove: [] }, 'n1');
    s = crdtApply(s, { type: 'set', add: ['b'], remove: [] }, 'n2');
    expect(error('set', { remove: ['a'], context: crdtContext(s) }, limits)).toMatchObject({ path: 'context', limit: 'crdt.maxActors' });
  });
});

describe('crdtLimits', () => {
  it('fills defaults and refuses unknown keys and out-of-range values, naming the key', () => {
    expect(crdtLimits({ maxSetElements: 5 }).maxSetElements).toBe(5);
    expect(crdtLimits().maxMapDepth).toBe(8);
    expect(() => crdtLimits({ maxSetElemnts: 5 })).toThrow(/crdt\.maxSetElemnts: unknown limit/);
    expect(() => crdtLimits({ maxMapDepth: 33 })).toThrow(/crdt\.maxMapDepth: expected an integer in \[1, 32\]/);
    expect(() => crdtLimits({ maxActors: 0 })).toThrow(/crdt\.maxActors/);
  });
});
