/**
 * The storage side of the convergent data types: the shared merge of stored records for crdt states
 * (src/storage/records.ts), the shard's apply step (src/storage/crdt-shard.ts), the anti-entropy plan
 * for crdt keys (src/repair/plan.ts) and the crdt.* config keys.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config/config.js';
import { crdtValue, decodeCrdt, DEFAULT_CRDT_LIMITS, encodeCrdt, parseOp, readEncoded } from '../../src/crdt/index.js';
import { planKeyRepairs } from '../../src/repair/plan.js';
import { tableIdOf } from '../../src/router/tables.js';
import { applyCrdtRequest, decodeApplyRequest, encodeApplyRequest } from '../../src/storage/crdt-shard.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { isCrdtState, mergeStoredRecords, recordFamily } from '../../src/storage/records.js';
import { RingkvError } from '../../src/util/errors.js';
import { encodeRecord, newVersion } from '../../src/versions/index.js';

const ctx = (actor: string) => ({ actor, limits: DEFAULT_CRDT_LIMITS });
const inc = (n: number) => encodeApplyRequest('counter', parseOp('counter', { increment: n }));

/** A counter state after `ops` increments applied by the given actors, one after another (as one replica would). */
function counterOf(ops: ReadonlyArray<[actor: string, n: number]>): Uint8Array {
  let s: Uint8Array | undefined;
  for (const [a, n] of ops) s = applyCrdtRequest(inc(n), s, ctx(a));
  return s!;
}

describe('the shard apply step', () => {
  it('an apply request round-trips the parsed operation and its context', () => {
    const parsed = parseOp('map', { update: { items_set: { add: ['b', 'a'] }, n_counter: { increment: 2 } }, remove: ['x_flag'], context: '' });
    expect(decodeApplyRequest(encodeApplyRequest('map', parsed))).toEqual({ type: 'map', parsed: { op: parsed.op, context: parsed.context } });
    const noCtx = parseOp('counter', { increment: 1 });
    expect(decodeApplyRequest(encodeApplyRequest('counter', noCtx)).parsed.context).toBeUndefined();
  });

  it('applies on the stored state under the node\'s actor; a refused operation throws its RingkvError with details', () => {
    const s = counterOf([
      ['n1@a', 5],
      ['n1@a', -2],
    ]);
    expect(crdtValue(decodeCrdt(s))).toBe(3);
    const set = applyCrdtRequest(encodeApplyRequest('set', parseOp('set', { add: ['a'] })), undefined, ctx('n1@a'));
    let err: unknown;
    try {
      applyCrdtRequest(encodeApplyRequest('set', parseOp('set', { remove: ['zz'] })), set, ctx('n1@a'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RingkvError);
    expect((err as RingkvError).details).toMatchObject({ precondition: 'not_present' });
    // A stored value of another kind (a version record, or another type) is refused, not overwritten.
    const record = encodeRecord([newVersion({ node: 'n', counter: 1, context: [], ts: 1, tombstone: false, value: Buffer.from('x'), maxClockEntries: 8 })]);
    expect(() => applyCrdtRequest(inc(1), record, ctx('n1@a'))).toThrow(/cannot apply a counter operation/);
    expect(() => applyCrdtRequest(inc(1), set, ctx('n1@a'))).toThrow(/stored state is a set/);
  });

  it('crdt.maxActors: a new actor on a full state is refused naming the limit', () => {
    const limits = { ...DEFAULT_CRDT_LIMITS, maxActors: 2 };
    const s = counterOf([
      ['a@1', 1],
      ['b@1', 1],
    ]);
    expect(() => applyCrdtRequest(inc(1), s, { actor: 'c@1', limits })).toThrow(/crdt\.maxActors/);
    expect(crdtValue(decodeCrdt(applyCrdtRequest(inc(1), s, { actor: 'a@1', limits })))).toBe(3);
  });
});

describe('mergeStoredRecords: crdt states merge with the join', () => {
  it('the join, and the stored bytes themselves (same object) when the incoming state adds nothing', () => {
    const a = counterOf([['n1@a', 1]]);
    const b = counterOf([['n2@a', 2]]);
    const ab = mergeStoredRecords('crdt', a, b, 1);
    expect(ab).not.toBe(a);
    expect(crdtValue(decodeCrdt(ab))).toBe(3);
    expect(mergeStoredRecords('crdt', ab, a, 1)).toBe(ab);
    expect(mergeStoredRecords('crdt', undefined, a, 1)).toBe(a);
    expect(() => mergeStoredRecords('crdt', undefined, Buffer.from([0x20, 0x01, 0xff]), 1)).toThrow(/corrupt CRDT state/);
  });

  it('property: replicas merging the same states in any order and with duplicates store equal bytes', () => {
    const actors = ['n1@a', 'n2@a', 'n3@a'];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: -5, max: 5 })), { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (ops, order) => {
        // Each actor's successive states (what it would ship after each of its increments).
        const per = actors.map(() => [] as Uint8Array[]);
        const latest: Array<Uint8Array | undefined> = actors.map(() => undefined);
        for (const [who, n] of ops) {
          latest[who] = applyCrdtRequest(inc(n), latest[who], ctx(actors[who]!));
          per[who]!.push(latest[who]!);
        }
        const deliveries = per.flat();
        const replica = (seq: readonly Uint8Array[]): Uint8Array => seq.reduce<Uint8Array | undefined>((s, x) => mergeStoredRecords('crdt', s, x, 1), undefined)!;
        const reordered = [...deliveries, ...order.map((i) => deliveries[i % deliveries.length]!)].reverse();
        const x = replica(deliveries);
        const y = replica(reordered);
        expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
        expect(crdtValue(decodeCrdt(x))).toBe(ops.reduce((sum, [, n]) => sum + n, 0));
      }),
    );
  });

  it('the first byte tells a crdt state from a version record and a cell', () => {
    const v = newVersion({ node: 'n', counter: 1, context: [], ts: 1, tombstone: false, value: Buffer.from('x'), maxClockEntries: 8 });
    const rec = encodeRecord([v]);
    const state = counterOf([['a@1', 1]]);
    expect(isCrdtState(rec)).toBe(false);
    expect(isCrdtState(state)).toBe(true);
    expect(recordFamily(state)).toBe('crdt');
    expect(recordFamily(rec)).toBe('versions');
    // A version record is not a crdt state: a crdt-mode merge refuses it rather than storing it.
    expect(() => mergeStoredRecords('crdt', state, rec, 1)).toThrow();
  });
});

describe('anti-entropy plan for crdt keys', () => {
  const t = tableIdOf('likes');
  const key = (s: string) => encodeStorageKey(1, 2, Buffer.from(t, 'hex'), Buffer.from(s));
  const policy = (o: Partial<Parameters<typeof planKeyRepairs>[1]> = {}) => ({
    modeOf: (id: string) => (id === t ? ('crdt' as const) : undefined),
    localMayStore: () => true,
    remoteMayStore: () => true,
    graceSecondsOf: () => 864000,
    maxSiblings: 1,
    nowMs: Date.now(),
    ...o,
  });

  it('sends the join to whichever side lacks it, nothing when both hold it', () => {
    const l = counterOf([['n1@a', 1]]);
    const r = counterOf([['n2@a', 2]]);
    const lr = mergeStoredRecords('crdt', l, r, 1);
    const plan = planKeyRepairs(
      [
        { key: key('diverged'), local: l, remote: r },
        { key: key('only-local'), local: l, remote: null },
        { key: key('only-remote'), local: null, remote: r },
        { key: key('behind'), local: l, remote: lr },
        { key: key('same'), local: lr, remote: Buffer.from(lr) },
      ],
      policy(),
    );
    const names = (xs: Array<{ key: Uint8Array }>) => xs.map((x) => Buffer.from(x.key.subarray(24, x.key.length - 2)).toString());
    expect(names(plan.toLocal)).toEqual(['diverged', 'only-remote', 'behind']);
    expect(names(plan.toRemote)).toEqual(['diverged', 'only-local']);
    expect(plan.toLocal.every((a) => a.mode === 'crdt')).toBe(true);
    expect(readEncoded('counter', plan.toLocal[0]!.record).value).toBe(3);
    expect(Buffer.from(plan.toLocal[0]!.record).equals(Buffer.from(plan.toRemote[0]!.record))).toBe(true);
    expect(plan.equal).toBe(1);
    // A CRDT state is never purgeable: an old state alone on one side still flows to the other.
    expect(planKeyRepairs([{ key: key('old'), local: l, remote: null }], policy({ nowMs: Date.now() + 1e12 })).toRemote).toHaveLength(1);
  });

  it('leaves unknown tables alone and honours which side may store the key', () => {
    const l = counterOf([['n1@a', 1]]);
    const other = encodeStorageKey(1, 2, Buffer.from(tableIdOf('other'), 'hex'), Buffer.from('k'));
    const plan = planKeyRepairs(
      [
        { key: other, local: l, remote: null },
        { key: key('k'), local: l, remote: null },
      ],
      policy({ remoteMayStore: () => false }),
    );
    expect(plan).toMatchObject({ toLocal: [], toRemote: [], unknownTable: 1 });
  });
});

describe('crdt.* config keys', () => {
  it('default to the core\'s limits, take overrides, and name the key of a bad value', () => {
    expect(resolveConfig(undefined, {}).crdt).toEqual(DEFAULT_CRDT_LIMITS);
    expect(resolveConfig({ crdt: { maxSetElements: 100 } } as never, {}).crdt).toEqual({ ...DEFAULT_CRDT_LIMITS, maxSetElements: 100 });
    expect(() => resolveConfig({ crdt: { maxSetElements: 0 } } as never, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ crdt: { maxSetElements: 0 } } as never, {})).toThrow(/crdt\.maxSetElements: expected an integer in \[1, 1000000\]/);
    expect(() => resolveConfig({ crdt: { maxFoo: 1 } } as never, {})).toThrow(/crdt\.maxFoo: unknown config key/);
    expect(() => resolveConfig({ tables: { conflicts: 'crdt' } } as never, {})).toThrow(/a crdt table needs a type/);
  });
});

it('encodeCrdt is what the shard stores (sanity: a decoded apply result re-encodes to the same bytes)', () => {
  const s = counterOf([['n1@a', 7]]);
  expect(Buffer.from(encodeCrdt(decodeCrdt(s))).equals(Buffer.from(s))).toBe(true);
});
