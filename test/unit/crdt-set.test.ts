import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crdtApply, crdtContext, crdtJoin, crdtValue, emptyCrdt, encodeCrdt, parseOp, readEncoded, applyToEncoded, type CrdtState } from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { RingkvError } from '../../src/util/errors.js';
import { lattice } from '../helpers/crdt-laws.js';
import { joinAll, simulate, stepsArb, type Resolver } from '../helpers/crdt-sim.js';

const POOL = ['a', 'b', 'c', 'd'];
const elems = fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 1, maxLength: 3 });
const opArb = fc.oneof(
  { arbitrary: fc.record({ add: elems }), weight: 3 },
  { arbitrary: fc.record({ remove: elems }), weight: 1 },
  // Removes of what the client read (resolved below), alone or with adds of other elements.
  { arbitrary: fc.record({ remove: fc.constant('$seen') }), weight: 3 },
  { arbitrary: fc.record({ add: elems, remove: fc.constant('$seen') }), weight: 1 },
) as fc.Arbitrary<Record<string, unknown>>;

/** `"$seen"`: one or two elements of the set the client read, none of them also added. */
const resolve: Resolver = (body, read, pick) => {
  if (body['remove'] !== '$seen') return body;
  const add = (body['add'] as string[] | undefined) ?? [];
  const seen = (crdtValue(read) as string[]).filter((e) => !add.includes(e));
  const chosen = seen.length === 0 ? [POOL[pick % POOL.length]!] : [seen[pick % seen.length]!, seen[(pick >> 3) % seen.length]!];
  return { ...body, remove: [...new Set(chosen)].filter((e) => !add.includes(e)) };
};

/** Applies a client body at replica `actor`, with an optional context token. */
function op(s: CrdtState, body: Record<string, unknown>, actor: string, context?: string): CrdtState {
  const parsed = parseOp('set', context === undefined ? body : { ...body, context });
  return crdtApply(s, parsed.op, actor, { context: parsed.context });
}

function refusal(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e instanceof RingkvError ? { code: e.code, ...e.details } : e;
  }
  return 'no error';
}

describe('set (ORSWOT)', () => {
  lattice('set', opArb, resolve);

  it('add wins over a concurrent remove', () => {
    const a0 = op(emptyCrdt('set'), { add: ['x', 'y'] }, 'n1');
    const b0 = crdtJoin(emptyCrdt('set'), a0); // n2 has seen x and y
    const a1 = op(a0, { add: ['x'] }, 'n1'); // n1 re-adds x ...
    const b1 = op(b0, { remove: ['x', 'y'] }, 'n2', crdtContext(b0)); // ... while n2 removes both
    expect(crdtValue(crdtJoin(a1, b1))).toEqual(['x']);
    expect(crdtValue(crdtJoin(b1, a1))).toEqual(['x']);
    // A remove that has seen the re-add removes it for good, and the set stays small.
    const merged = crdtJoin(a1, b1);
    const gone = op(merged, { remove: ['x'] }, 'n3', crdtContext(merged));
    expect(crdtValue(crdtJoin(gone, a1))).toEqual([]);
  });

  it('a removed element does not come back from a stale replica (no tombstones)', () => {
    const a = op(emptyCrdt('set'), { add: ['x'] }, 'n1');
    const stale = a;
    const removed = op(a, { remove: ['x'] }, 'n1', crdtContext(a));
    expect(removed.type === 'set' && removed.elems.length).toBe(0);
    expect(crdtValue(crdtJoin(removed, stale))).toEqual([]);
    expect(crdtValue(crdtJoin(stale, removed))).toEqual([]);
  });

  it('refuses removing an element the context has not seen (not_present), changing nothing', () => {
    const a = op(emptyCrdt('set'), { add: ['x'] }, 'n1');
    expect(refusal(() => op(a, { remove: ['nope'] }, 'n1'))).toMatchObject({ code: 'conflict', precondition: 'not_present', path: 'remove' });
    // x was added after the context was taken: the client cannot have seen it.
    const ctxBefore = crdtContext(emptyCrdt('set'))!;
    expect(refusal(() => op(a, { remove: ['x'] }, 'n1', ctxBefore))).toMatchObject({ precondition: 'not_present' });
    // Atomic: one bad element refuses the whole op.
    const ab = op(a, { add: ['y'] }, 'n1');
    expect(refusal(() => op(ab, { remove: ['y', 'zz'] }, 'n1'))).toMatchObject({ precondition: 'not_present' });
    expect(crdtValue(ab)).toEqual(['x', 'y']);
  });

  it('refuses a remove whose context is ahead of the coordinating replica (context_ahead)', () => {
    const n1 = op(emptyCrdt('set'), { add: ['x'] }, 'n1');
    const n2 = op(emptyCrdt('set'), { add: ['x'] }, 'n2'); // n2 has its own add of x, not n1's
    const client = crdtJoin(n1, n2); // the client read both (R=2)
    const ctx = crdtContext(client)!;
    expect(refusal(() => op(n2, { remove: ['x'] }, 'n2', ctx))).toMatchObject({ code: 'conflict', precondition: 'context_ahead', path: 'context' });
    // Once the coordinating replica has caught up (joined n1's state), the same remove succeeds
    // and removes both adds: nothing resurfaces when n1's stale state arrives.
    const caughtUp = crdtJoin(n2, n1);
    const removed = op(caughtUp, { remove: ['x'] }, 'n2', ctx);
    expect(crdtValue(crdtJoin(removed, n1))).toEqual([]);
    // Adds ignore the context.
    expect(crdtValue(op(n2, { add: ['z'] }, 'n2', ctx))).toEqual(['x', 'z']);
  });

  it('values are sorted by UTF-16 code units and encodings are canonical', () => {
    const s = op(emptyCrdt('set'), { add: ['b', 'B', 'a', 'é', '10', '9'] }, 'n1');
    expect(crdtValue(s)).toEqual(['10', '9', 'B', 'a', 'b', 'é']);
    const t = op(emptyCrdt('set'), { add: ['é', '9', 'a', 'B', '10', 'b'] }, 'n1');
    expect(Buffer.compare(encodeCrdt(s), encodeCrdt(t))).toBe(0);
  });

  it('refuses growing past crdt.maxSetElements (413) but still allows removes', () => {
    const limits = crdtLimits({ maxSetElements: 3 });
    let bytes = applyToEncoded('set', undefined, parseOp('set', { add: ['a', 'b', 'c'] }, limits), 'n1', 1, limits).bytes;
    expect(refusal(() => applyToEncoded('set', bytes, parseOp('set', { add: ['d'] }, limits), 'n1', 2, limits))).toMatchObject({
      code: 'too_large',
      limit: 'crdt.maxSetElements',
    });
    bytes = applyToEncoded('set', bytes, parseOp('set', { add: ['a'] }, limits), 'n1', 3, limits).bytes; // re-add: no growth
    bytes = applyToEncoded('set', bytes, parseOp('set', { remove: ['a'], add: ['d'] }, limits), 'n1', 4, limits).bytes;
    expect(readEncoded('set', bytes).value).toEqual(['b', 'c', 'd']);
  });

  it('every element present after convergence was added by an applied op, and a removed-everywhere element is gone', () => {
    fc.assert(
      fc.property(stepsArb(opArb, 40), (steps) => {
        const run = simulate('set', steps, resolve);
        const all = joinAll(run.history, 'set');
        const added = new Set(run.applied.flatMap((a) => (a.body['add'] as string[] | undefined) ?? []));
        for (const e of crdtValue(all) as string[]) expect(added.has(e)).toBe(true);
        // A final remove with the merged context empties the set for good.
        const elems = crdtValue(all) as string[];
        if (elems.length > 0) {
          const cleared = op(all, { remove: elems }, 'n1', crdtContext(all));
          expect(crdtValue(joinAll([...run.history, cleared], 'set'))).toEqual([]);
        }
      }),
    );
  });
});

describe('set simulation coverage', () => {
  it('the generated runs apply removes and hit both kinds of refusal', () => {
    const totals = new Map<string, number>();
    let removesApplied = 0;
    for (const steps of fc.sample(stepsArb(opArb, 40), { numRuns: 200, seed: 14 })) {
      const run = simulate('set', steps, resolve);
      removesApplied += run.applied.filter((a) => a.body['remove'] !== undefined).length;
      for (const [k, n] of run.refused) totals.set(k, (totals.get(k) ?? 0) + n);
    }
    expect(removesApplied).toBeGreaterThan(100);
    expect(totals.get('conflict/not_present') ?? 0).toBeGreaterThan(20);
    expect(totals.get('conflict/context_ahead') ?? 0).toBeGreaterThan(20);
  });
});
