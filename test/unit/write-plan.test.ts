import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildRing, type RingLayout } from '../../src/ring/builder.js';
import { initHasher, tokenFromBigInt } from '../../src/ring/hash.js';
import { resolveConsistency, type ConsistencySpec } from '../../src/router/consistency.js';
import type { KeyRoute } from '../../src/router/kv-types.js';
import type { Replica } from '../../src/router/types.js';
import { planWrite, type WritePlanView } from '../../src/router/write-plan.js';
import type { PendingReplicas } from '../../src/streaming/pending.js';
import { RingkvError } from '../../src/util/errors.js';

const IDS = ['a', 'b', 'c', 'd', 'e'];
let layout: RingLayout;

beforeAll(async () => {
  await initHasher();
  const t = (x: bigint) => tokenFromBigInt(x << 56n);
  // One token each, in id order: position 0's preference list is a, b, c; its fallbacks d, e.
  layout = buildRing(
    IDS.map((id, i) => ({ id, tokens: [t(BigInt(i + 1))], status: 'normal' as const })),
    { maxReplicas: 3 },
  );
});

/** The route of ring position 0 as the router builds it (this node is `a`). */
function route(): KeyRoute {
  const replicas: Replica[] = [];
  for (let k = 0; k < layout.replicas; k++) {
    const nodeIndex = layout.pref[k]!;
    replicas.push({ nodeIndex, nodeId: layout.nodeIds[nodeIndex]!, local: nodeIndex === 0 });
  }
  return { hi: 1, lo: 2, pos: 0, replicas };
}

function view(down: ReadonlySet<string>, opts: { hinting?: boolean; pending?: PendingReplicas | null } = {}): WritePlanView {
  return {
    currentLayout: layout,
    pending: opts.pending ?? null,
    hinting: opts.hinting ?? true,
    isUp: (r) => r.local || !down.has(r.nodeId),
    isUpId: (id) => !down.has(id),
  };
}

const cons = (spec: ConsistencySpec, n = 3) => resolveConsistency(spec, 'write', n, 3);
const sloppy = { quorum: 'sloppy' as const };
const strict = { quorum: 'strict' as const };

describe('write plan', () => {
  it('with every target up: the route itself, no hints, no pending (nothing allocated)', () => {
    const r = route();
    const p = planWrite(view(new Set()), r, sloppy, cons({}));
    expect(p.targets).toBe(r.replicas);
    expect(p.up).toBe(r.replicas);
    expect(p.down).toEqual([]);
    expect(p.placements).toEqual([]);
    expect(p.pending).toEqual([]);
  });

  it('takes the first N replicas when the table asks for fewer than the ring has', () => {
    const p = planWrite(view(new Set()), route(), sloppy, cons({}, 2));
    expect(p.targets.map((r) => r.nodeId)).toEqual(['a', 'b']);
  });

  it('sends a down replica\'s write as a hint to the next healthy node clockwise outside the N', () => {
    const p = planWrite(view(new Set(['b', 'd'])), route(), sloppy, cons({ level: 'ALL' }));
    expect(p.up.map((r) => r.nodeId)).toEqual(['a', 'c']);
    expect(p.down.map((r) => r.nodeId)).toEqual(['b']);
    // d is down too, so e holds the hint, and under sloppy quorum it counts toward W = 3.
    expect(p.placements).toEqual([{ target: 'b', holder: 'e', counts: true }]);
  });

  it('refuses (unavailable, nothing planned) when up replicas plus counted hints cannot meet W', () => {
    const attempt = () => planWrite(view(new Set(['b', 'c'])), route(), strict, cons({ level: 'QUORUM' }));
    expect(attempt).toThrow(RingkvError);
    try {
      attempt();
    } catch (e) {
      expect((e as RingkvError).code).toBe('unavailable');
      expect((e as RingkvError).details).toEqual({ n: 3, required: 2, up: 1 });
    }
  });

  it('without a hint sink places no hints, so a down replica only lowers the up count', () => {
    const p = planWrite(view(new Set(['c']), { hinting: false }), route(), sloppy, cons({ level: 'QUORUM' }));
    expect(p.placements).toEqual([]);
    expect(p.down.map((r) => r.nodeId)).toEqual(['c']);
    expect(() => planWrite(view(new Set(['c']), { hinting: false }), route(), sloppy, cons({ level: 'ALL' }))).toThrow(/write quorum not met/);
  });

  it('asks the pending replicas for the N the request asked for, before the clamp to the ring', () => {
    const asked: number[] = [];
    const joining: Replica = { nodeIndex: -1, nodeId: 'f', local: false };
    const pending: PendingReplicas = { at: (_hi, _lo, n) => (asked.push(n), [joining]), isUp: () => true };
    const clamped = resolveConsistency({ n: 5 }, 'write', 3, 3);
    expect(clamped.clamped).toBeDefined();
    const p = planWrite(view(new Set(), { pending }), route(), sloppy, clamped);
    expect(asked).toEqual([5]);
    expect(p.pending).toEqual([joining]);
  });

  it('property: up and down partition the targets, in order, and W is met or the plan is refused', () => {
    fc.assert(
      fc.property(fc.subarray(IDS), fc.constantFrom('ONE', 'QUORUM', 'ALL', 'ANY'), fc.constantFrom(sloppy, strict), (downIds, level, table) => {
        const down = new Set(downIds);
        const c = cons({ level: level as ConsistencySpec['level'] });
        let p;
        try {
          p = planWrite(view(down), route(), table, c);
        } catch (e) {
          expect((e as RingkvError).code).toBe('unavailable');
          return;
        }
        expect([...p.up, ...p.down].map((r) => r.nodeId).sort()).toEqual(p.targets.map((r) => r.nodeId).sort());
        for (const r of p.up) expect(r.local || !down.has(r.nodeId)).toBe(true);
        for (const r of p.down) expect(down.has(r.nodeId)).toBe(true);
        expect(p.placements.map((h) => h.target)).toEqual(p.down.map((r) => r.nodeId));
        for (const h of p.placements) if (h.holder !== null) expect(down.has(h.holder) || p.targets.some((r) => r.nodeId === h.holder)).toBe(false);
        expect(p.up.length + p.placements.filter((h) => h.counts).length).toBeGreaterThanOrEqual(c.required);
      }),
    );
  });
});
