import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HandshakePool } from '../../src/cluster/handshake-pool.js';

describe('HandshakePool', () => {
  it('stays within its bounds, always admits the newcomer, and evicts only when full: the own address first, else the busiest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.oneof(fc.record({ add: fc.integer({ min: 0, max: 5 }) }), fc.record({ remove: fc.nat() })), { maxLength: 200 }),
        (total, perRaw, ops) => {
          const per = Math.min(perRaw, total);
          const pool = new HandshakePool<number>({ maxUnauthenticatedConnections: total, maxUnauthenticatedPerAddress: per });
          const live = new Map<number, string>(); // id -> address, in insertion order (= age)
          let next = 0;
          for (const op of ops) {
            if ('add' in op) {
              const address = `10.0.0.${op.add}`;
              const before = [...live];
              const count = (a: string): number => before.filter(([, x]) => x === a).length;
              const oldestOf = (a: string): number => before.find(([, x]) => x === a)![0];
              const id = next++;
              const victim = pool.admit(address, id);
              if (count(address) >= per) {
                expect(victim).toBe(oldestOf(address));
              } else if (before.length >= total) {
                expect(victim).toBeDefined();
                const from = live.get(victim!)!;
                expect(victim).toBe(oldestOf(from));
                for (const [, a] of before) expect(count(a)).toBeLessThanOrEqual(count(from));
              } else {
                expect(victim).toBeUndefined();
              }
              if (victim !== undefined) live.delete(victim);
              live.set(id, address);
            } else if (live.size > 0) {
              const [id, address] = [...live][op.remove % live.size]!;
              expect(pool.remove(address, id)).toBe(true);
              expect(pool.remove(address, id)).toBe(false);
              live.delete(id);
            }
            expect(pool.size).toBe(live.size);
            expect(pool.size).toBeLessThanOrEqual(total);
            for (const a of new Set(live.values())) expect(pool.countOf(a)).toBe([...live.values()].filter((x) => x === a).length);
            for (const a of new Set(live.values())) expect(pool.countOf(a)).toBeLessThanOrEqual(per);
          }
        },
      ),
    );
  });

  it('lets a real peer in past hundreds of idle connections, from its own address or another one', () => {
    const pool = new HandshakePool<string>({ maxUnauthenticatedConnections: 128, maxUnauthenticatedPerAddress: 16 });
    for (let i = 0; i < 300; i++) pool.admit('6.6.6.6', `idle${i}`);
    expect(pool.countOf('6.6.6.6')).toBe(16);
    expect(pool.admit('10.0.0.2', 'peer')).toBeUndefined();
    expect(pool.admit('6.6.6.6', 'peer-on-the-same-host')).toBe('idle284');
    // Idle connections from many addresses fill the pool: a newcomer evicts from the busiest, never the lone peer.
    for (let a = 0; a < 20; a++) for (let i = 0; i < 16; i++) pool.admit(`7.7.7.${a}`, `idle-${a}-${i}`);
    expect(pool.size).toBe(128);
    expect(pool.countOf('10.0.0.2')).toBe(1);
    expect(pool.remove('10.0.0.2', 'peer')).toBe(true);
  });
});
