import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConsistency, resolveConsistency } from '../../src/router/consistency.js';
import { QuorumTracker } from '../../src/router/quorum.js';

describe('QuorumTracker', () => {
  it('succeeds exactly when `required` acks arrive and fails once success is impossible', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.array(fc.boolean(), { maxLength: 5 }), (n, req, outcomes) => {
        fc.pre(req <= n);
        const t = new QuorumTracker(n, req);
        let acks = 0;
        let fails = 0;
        for (const ok of outcomes.slice(0, n)) {
          const before = t.state;
          const s = ok ? t.ack() : t.fail();
          if (ok) acks++;
          else fails++;
          if (before !== 'pending') expect(s).toBe(before); // decided once, never flips
          else if (acks >= req) expect(s).toBe('succeeded');
          else if (n - fails < req) expect(s).toBe('failed');
          else expect(s).toBe('pending');
        }
      }),
    );
  });

  it('rejects impossible configurations and extra outcomes', () => {
    expect(() => new QuorumTracker(2, 3)).toThrow(/invariant/);
    const t = new QuorumTracker(1, 1);
    t.ack();
    expect(() => t.ack()).toThrow(/invariant/);
  });
});

describe('consistency', () => {
  it('maps levels to counts for n=3', () => {
    const r = (level: 'ONE' | 'TWO' | 'QUORUM' | 'ALL' | 'ANY') => resolveConsistency({ level }, 'write', 3, 3).required;
    expect([r('ONE'), r('TWO'), r('QUORUM'), r('ALL'), r('ANY')]).toEqual([1, 2, 2, 3, 1]);
    expect(resolveConsistency({ level: 'ANY' }, 'write', 3, 3).any).toBe(true);
  });

  it('validates 1 <= r,w <= n with clear messages', () => {
    expect(() => resolveConsistency({ w: 4, n: 3 }, 'write', 3, 3)).toThrow(/w=4 exceeds n=3/);
    expect(() => parseConsistency({ r: '0' })).toThrow(/r must be an integer/);
    expect(() => parseConsistency({ consistency: 'MOST' })).toThrow(/consistency must be one of/);
    expect(() => resolveConsistency({ level: 'ANY' }, 'read', 3, 3)).toThrow(/writes only/);
  });

  it('clamps to the ring and reports the clamp', () => {
    const c = resolveConsistency({ level: 'ALL' }, 'write', 3, 1);
    expect(c).toMatchObject({ n: 1, required: 1, clamped: { requested: { n: 3, required: 3 }, ringReplicas: 1 } });
    expect(resolveConsistency({}, 'read', 3, 3).clamped).toBeUndefined();
  });
});
