import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyToEncoded,
  crdtApply,
  crdtContext,
  crdtJoin,
  crdtValue,
  emptyCrdt,
  encodeCrdt,
  fieldType,
  parseOp,
  readEncoded,
  type CrdtState,
  type CrdtValue,
} from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { RingkvError } from '../../src/util/errors.js';
import { lattice } from '../helpers/crdt-laws.js';
import { joinAll, simulate, stepsArb, type Resolver } from '../helpers/crdt-sim.js';

type Body = Record<string, unknown>;
const POOL = ['a', 'b', 'c'];
const elems = fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: 2 });
const counterOp = fc.record({ increment: fc.integer({ min: -5, max: 5 }) });
const setOp = fc.oneof(fc.record({ add: elems }), fc.record({ remove: fc.constant('$seen') }), fc.record({ add: elems, remove: fc.constant('$seen') }));
const flagOp = fc.constantFrom<Body>({ enable: true }, { disable: true });
const registerOp = fc.record({ assign: fc.constantFrom('x', 'y') });
const nonEmpty = (o: Body): boolean => Object.keys(o).length > 0;

// Three levels: top fields, a nested map m_map, and n_map inside it.
const level3 = fc.record({ q_set: setOp, r_counter: counterOp }, { requiredKeys: [] }).filter(nonEmpty);
const level2Updates = fc.record({ x_counter: counterOp, y_set: setOp, z_flag: flagOp, w_register: registerOp, n_map: level3 }, { requiredKeys: [] });
const level2 = fc.oneof(
  level2Updates.filter(nonEmpty), // shorthand {field: op}
  fc.record({ update: level2Updates, remove: fc.constant('$seen') }),
);
const topUpdates = fc.record({ a_counter: counterOp, b_set: setOp, c_flag: flagOp, d_register: registerOp, m_map: level2 }, { requiredKeys: [] });
const opArb: fc.Arbitrary<Body> = fc.oneof(
  { arbitrary: fc.record({ update: topUpdates.filter(nonEmpty) }), weight: 4 },
  { arbitrary: fc.record({ remove: fc.constant('$seen') }), weight: 2 },
  { arbitrary: fc.record({ update: topUpdates, remove: fc.constant('$seen') }), weight: 1 },
  { arbitrary: fc.record({ remove: fc.uniqueArray(fc.constantFrom('a_counter', 'b_set', 'm_map'), { minLength: 1 }) }), weight: 1 },
);

function asObject(v: CrdtValue | undefined): Record<string, CrdtValue> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

/** Replaces each "$seen" with one or two of the fields/elements the client read at that place. */
function resolveAt(body: Body, read: Record<string, CrdtValue>, pick: number): Body {
  const explicit = 'update' in body || 'remove' in body;
  const updates = (explicit ? (body['update'] as Body | undefined) ?? {} : body) as Body;
  const resolved: Body = {};
  for (const [name, op] of Object.entries(updates)) {
    const t = fieldType(name);
    const sub = read[name];
    if (t === 'map') resolved[name] = resolveAt(op as Body, asObject(sub), pick >> 2);
    else if (t === 'set' && (op as Body)['remove'] === '$seen') {
      const add = ((op as Body)['add'] as string[] | undefined) ?? [];
      const seen = (Array.isArray(sub) ? sub : []).filter((e) => !add.includes(e));
      const remove = seen.length > 0 ? [seen[pick % seen.length]!] : [];
      resolved[name] = remove.length > 0 ? { ...(op as Body), remove } : add.length > 0 ? { add } : { add: ['a'] };
    } else resolved[name] = op;
  }
  if (!explicit) return resolved;
  const out: Body = { update: resolved };
  if (body['remove'] === '$seen') {
    const present = Object.keys(read).filter((n) => !(n in resolved));
    if (present.length > 0) out['remove'] = [...new Set([present[pick % present.length]!, present[(pick >> 4) % present.length]!])];
  } else if (body['remove'] !== undefined) out['remove'] = body['remove'];
  return out;
}

const resolve: Resolver = (body, read, pick) => resolveAt(body, asObject(crdtValue(read)), pick);

function op(s: CrdtState, body: Body, actor: string, context?: string, nowMicros = 1): CrdtState {
  const parsed = parseOp('map', context === undefined ? body : { ...body, context });
  return crdtApply(s, parsed.op, actor, { context: parsed.context, nowMicros });
}

function refusal(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e instanceof RingkvError ? { code: e.code, message: e.message, ...e.details } : e;
  }
  return 'no error';
}

describe('map', () => {
  lattice('map', opArb, resolve, 120);

  it('answers the nested JSON of the issue example', () => {
    let bytes: Uint8Array | undefined;
    const body = { update: { cart_map: { items_set: { add: ['book'] } }, total_counter: { increment: 12 } } };
    bytes = applyToEncoded('map', bytes, parseOp('map', body), 'n1', 1).bytes;
    const read = readEncoded('map', bytes);
    expect(read.value).toEqual({ cart_map: { items_set: ['book'] }, total_counter: 12 });
    expect(Object.keys(read.value as object)).toEqual(['cart_map', 'total_counter']);
    bytes = applyToEncoded('map', bytes, parseOp('map', { remove: ['total_counter'], context: read.context }), 'n1', 2).bytes;
    expect(readEncoded('map', bytes).value).toEqual({ cart_map: { items_set: ['book'] } });
  });

  it('reset-remove: a field removed while another replica adds to it keeps only the concurrent add', () => {
    const five = op(emptyCrdt('map'), { update: { items_set: { add: ['1', '2', '3', '4', '5'] } } }, 'n1');
    const atB = crdtJoin(emptyCrdt('map'), five);
    const removedAtA = op(five, { remove: ['items_set'] }, 'n1', crdtContext(five));
    const addedAtB = op(atB, { update: { items_set: { add: ['6'] } } }, 'n2');
    expect(crdtValue(crdtJoin(removedAtA, addedAtB))).toEqual({ items_set: ['6'] });
    expect(crdtValue(crdtJoin(addedAtB, removedAtA))).toEqual({ items_set: ['6'] });
  });

  it('reset-remove reaches into nested maps: only concurrently updated sub-fields survive', () => {
    const base = op(emptyCrdt('map'), { update: { cart_map: { items_set: { add: ['book'] }, n_counter: { increment: 3 } } } }, 'n1');
    const atB = crdtJoin(emptyCrdt('map'), base);
    const removed = op(base, { remove: ['cart_map'] }, 'n1', crdtContext(base));
    const updated = op(atB, { update: { cart_map: { gift_flag: { enable: true } } } }, 'n2');
    expect(crdtValue(crdtJoin(removed, updated))).toEqual({ cart_map: { gift_flag: true } });
  });

  it('update wins over a concurrent field removal; a removal that saw the update wins', () => {
    const base = op(emptyCrdt('map'), { update: { name_register: { assign: 'ann' } } }, 'n1', undefined, 10);
    const atB = crdtJoin(emptyCrdt('map'), base);
    const removed = op(atB, { remove: ['name_register'] }, 'n2', crdtContext(atB));
    const reassigned = op(base, { update: { name_register: { assign: 'bob' } } }, 'n1', undefined, 20);
    expect(crdtValue(crdtJoin(removed, reassigned))).toEqual({ name_register: 'bob' });
    expect(crdtValue(crdtJoin(removed, base))).toEqual({});
  });

  it('counter fields keep Riak’s anomaly: a concurrent increment survives with its actor’s total', () => {
    const ten = op(emptyCrdt('map'), { update: { hits_counter: { increment: 10 } } }, 'n2');
    const atA = crdtJoin(emptyCrdt('map'), ten);
    const removedAtA = op(atA, { remove: ['hits_counter'] }, 'n1', crdtContext(atA));
    // The same actor that made the 10 increments once more: its entry carries its whole total.
    const sameActor = op(ten, { update: { hits_counter: { increment: 1 } } }, 'n2');
    expect(crdtValue(crdtJoin(removedAtA, sameActor))).toEqual({ hits_counter: 11 });
    // Another actor's concurrent increment survives alone.
    const otherActor = op(crdtJoin(emptyCrdt('map'), ten), { update: { hits_counter: { increment: 1 } } }, 'n3');
    expect(crdtValue(crdtJoin(removedAtA, otherActor))).toEqual({ hits_counter: 1 });
  });

  it('emptied fields stay present until removed', () => {
    let s = op(emptyCrdt('map'), { update: { tags_set: { add: ['x'] }, gift_flag: { enable: true } } }, 'n1');
    s = op(s, { update: { tags_set: { remove: ['x'] }, gift_flag: { disable: true } } }, 'n1', crdtContext(s));
    expect(crdtValue(s)).toEqual({ gift_flag: false, tags_set: [] });
  });

  it('concurrent register assigns in a map show the LWW winner and collapse on the next assign', () => {
    const e = emptyCrdt('map');
    const a = op(e, { update: { name_register: { assign: 'a' } } }, 'n1', undefined, 100);
    const b = op(e, { update: { name_register: { assign: 'b' } } }, 'n2', undefined, 200);
    const both = crdtJoin(a, b);
    expect(crdtValue(both)).toEqual({ name_register: 'b' });
    const next = op(both, { update: { name_register: { assign: 'c' } } }, 'n1', undefined, 50);
    expect(crdtValue(next)).toEqual({ name_register: 'c' });
    expect(encodeCrdt(next).length).toBeLessThan(encodeCrdt(both).length);
  });

  it('refuses removing a field that is absent or unseen, and a context ahead of the replica', () => {
    const s = op(emptyCrdt('map'), { update: { a_counter: { increment: 1 } } }, 'n1');
    expect(refusal(() => op(s, { remove: ['zz_set'] }, 'n1'))).toMatchObject({ code: 'conflict', precondition: 'not_present', path: 'remove' });
    expect(refusal(() => op(s, { remove: ['a_counter'] }, 'n1', crdtContext(emptyCrdt('map'))))).toMatchObject({ precondition: 'not_present' });
    const other = op(emptyCrdt('map'), { update: { a_counter: { increment: 1 } } }, 'n2');
    expect(refusal(() => op(s, { remove: ['a_counter'] }, 'n1', crdtContext(other)))).toMatchObject({ precondition: 'context_ahead' });
    // Nested set removes are checked the same way, with the nested path.
    const withSet = op(s, { update: { cart_map: { items_set: { add: ['x'] } } } }, 'n1');
    expect(refusal(() => op(withSet, { update: { cart_map: { items_set: { remove: ['y'] } } } }, 'n1'))).toMatchObject({
      precondition: 'not_present',
      path: 'update.cart_map.items_set.remove',
    });
  });

  it('enforces crdt.maxMapFields, crdt.maxMapDepth and crdt.maxSetElements in nested fields', () => {
    const limits = crdtLimits({ maxMapFields: 2, maxMapDepth: 2, maxSetElements: 2 });
    const apply = (s: CrdtState, body: Body): CrdtState => crdtApply(s, parseOp('map', body, limits).op, 'n1', { limits, nowMicros: 1 });
    const s = apply(emptyCrdt('map'), { update: { a_counter: { increment: 1 }, b_counter: { increment: 1 } } });
    expect(refusal(() => apply(s, { update: { c_counter: { increment: 1 } } }))).toMatchObject({ code: 'too_large', limit: 'crdt.maxMapFields' });
    expect(refusal(() => apply(s, { update: { m_map: { n_map: { c_counter: { increment: 1 } } } } }))).toMatchObject({
      code: 'too_large',
      limit: 'crdt.maxMapDepth',
      path: 'update.m_map.n_map',
    });
    expect(refusal(() => apply(emptyCrdt('map'), { update: { m_map: { s_set: { add: ['1', '2', '3'] } } } }))).toMatchObject({
      limit: 'crdt.maxSetElements',
      path: 'update.m_map.s_set.add',
    });
  });

  it('converged replicas agree on a value that a final full removal empties for good', () => {
    fc.assert(
      fc.property(stepsArb(opArb, 40), (steps) => {
        const run = simulate('map', steps, resolve);
        const all = joinAll(run.history, 'map');
        const fields = Object.keys(crdtValue(all) as object);
        if (fields.length === 0) return;
        const cleared = op(all, { remove: fields }, 'n1', crdtContext(all));
        expect(crdtValue(joinAll([...run.history, cleared], 'map'))).toEqual({});
      }),
    );
  });

  it('the generated runs apply field removes, nested removes and hit refusals', () => {
    let fieldRemoves = 0;
    let nestedRemoves = 0;
    const refused = new Map<string, number>();
    for (const steps of fc.sample(stepsArb(opArb, 40), { numRuns: 200, seed: 14 })) {
      const run = simulate('map', steps, resolve);
      for (const a of run.applied) {
        if (Array.isArray(a.body['remove'])) fieldRemoves++;
        if (JSON.stringify(a.body['update'] ?? {}).includes('"remove"')) nestedRemoves++;
      }
      for (const [k, n] of run.refused) refused.set(k, (refused.get(k) ?? 0) + n);
    }
    expect(fieldRemoves).toBeGreaterThan(100);
    expect(nestedRemoves).toBeGreaterThan(100);
    expect(refused.get('conflict/context_ahead') ?? 0).toBeGreaterThan(20);
    expect(refused.get('conflict/not_present') ?? 0).toBeGreaterThan(20);
  });
});
