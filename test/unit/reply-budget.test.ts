import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MIN_REPLY_ESTIMATE_BYTES, ReplyBudget, type ReplyAccount } from '../../src/net/reply-budget.js';

/**
 * A model of a connection serving reads the way the IPC server does: a read starts when canStart
 * allows its reservation, and when it finishes its reply is kept if it fits, else run again later.
 * Kept replies wait in the "socket" until drained.
 */
interface Conn {
  account: ReplyAccount;
  todo: number[]; // reply sizes of reads not started yet
  running: Array<{ size: number; reserved: number }>;
  socket: number[]; // kept replies not yet drained
  done: number;
  total: number;
}

function startAll(c: Conn): void {
  while (c.todo.length > 0 && c.account.canStart(c.account.estimate)) {
    const reserved = c.account.estimate;
    c.account.reserve(reserved);
    c.running.push({ size: c.todo.shift()!, reserved });
  }
}

function finish(c: Conn, i: number): void {
  const [r] = c.running.splice(i, 1);
  c.account.unreserve(r!.reserved);
  c.account.observe(r!.size);
  if (c.account.fits(r!.size)) {
    c.account.hold(r!.size);
    c.socket.push(r!.size);
  } else {
    c.account.rerun();
    c.todo.unshift(r!.size);
  }
}

function drainOne(c: Conn): void {
  const n = c.socket.shift()!;
  c.account.release(n);
  c.done++;
}

describe('ReplyBudget', () => {
  it('keeps every connection within its bound (or one reply), the node within its total, and always makes progress', () => {
    const sizes = fc.integer({ min: 1, max: 2_000_000 });
    fc.assert(
      fc.property(
        fc.array(fc.array(sizes, { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 300 }),
        fc.integer({ min: 1, max: 8 }),
        (work, steps, perMiB) => {
          const per = perMiB * 1024 * 1024;
          const budget = new ReplyBudget({ maxReplyBytesPerConnection: per, maxReplyBytesTotal: 2 * per });
          let largest = 0;
          for (const w of work) for (const s of w) largest = Math.max(largest, s);
          const conns: Conn[] = work.map((todo) => {
            const c: Conn = { account: budget.open(1024 * 1024, () => startAll(c)), todo: [...todo], running: [], socket: [], done: 0, total: todo.length };
            return c;
          });
          const check = (): void => {
            let held = 0;
            let reserved = 0;
            for (const c of conns) {
              held += c.account.held;
              reserved += c.account.reserved;
              expect(c.account.held).toBe(c.socket.reduce((a, b) => a + b, 0));
              // Kept replies stay within the connection's bound, except a lone reply larger than it.
              expect(c.account.held).toBeLessThanOrEqual(Math.max(per, largest));
              expect(c.account.estimate).toBeGreaterThanOrEqual(MIN_REPLY_ESTIMATE_BYTES);
            }
            expect(budget.held).toBe(held);
            expect(budget.reserved).toBe(reserved);
            // The node's total, plus at most one lone reply per connection (each always gets one out).
            expect(budget.held).toBeLessThanOrEqual(2 * per + largest * conns.length);
          };
          for (const c of conns) startAll(c);
          // Random interleaving of finishes and drains.
          for (const s of steps) {
            const c = conns[s % conns.length]!;
            if (s % 3 !== 0 && c.running.length > 0) finish(c, s % c.running.length);
            else if (c.socket.length > 0) drainOne(c);
            startAll(c);
            check();
          }
          // Then a client that reads everything: every read completes (no deadlock).
          for (let guard = 0; conns.some((c) => c.done < c.total); guard++) {
            expect(guard).toBeLessThan(100_000);
            for (const c of conns) {
              if (c.running.length > 0) finish(c, 0);
              else if (c.socket.length > 0) drainOne(c);
              startAll(c);
            }
            check();
          }
          expect(budget.held + budget.reserved).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('learns the reply size: the estimate jumps up at once and decays by 1/8 per smaller reply', () => {
    const a = new ReplyBudget().open(1 << 20);
    expect(a.estimate).toBe(1 << 20);
    a.observe(100);
    expect(a.estimate).toBe((1 << 20) - (1 << 17));
    for (let i = 0; i < 200; i++) a.observe(100);
    expect(a.estimate).toBe(100);
    a.observe(5000);
    expect(a.estimate).toBe(5000);
  });

  it('admits one request on an empty connection however large, and blocks on the node total until bytes are released', () => {
    const budget = new ReplyBudget({ maxReplyBytesPerConnection: 1000, maxReplyBytesTotal: 1500 });
    let woken = 0;
    const a = budget.open(800);
    const b = budget.open(800, () => woken++);
    expect(a.canStart(5000)).toBe(true);
    a.reserve(800);
    expect(a.canStart(800)).toBe(false); // its own bound
    a.unreserve(800);
    a.hold(900);
    expect(b.canStart(800)).toBe(true); // empty: always one
    b.reserve(100);
    expect(b.canStart(800)).toBe(false); // 900 + 100 + 800 > 1500
    expect(woken).toBe(0);
    a.release(900);
    expect(woken).toBe(1);
    expect(b.canStart(800)).toBe(true);
    // Closing drops what the connection held; its running requests keep their reservation until they end.
    b.reserve(800);
    b.hold(50);
    b.close();
    expect(budget.held).toBe(0);
    expect(budget.reserved).toBe(900);
    expect(b.settled).toBe(false);
    b.unreserve(900);
    expect(b.settled).toBe(true);
    expect(budget.stats()).toMatchObject({ heldBytes: 0, reservedBytes: 0, connections: 1 });
  });

  it('exempts a group\'s own bytes: a batch never waits for its own items', () => {
    const budget = new ReplyBudget({ maxReplyBytesPerConnection: 1000, maxReplyBytesTotal: 10_000 });
    const a = budget.open(600);
    a.hold(900); // finished items of one batch
    expect(a.canStart(600)).toBe(false);
    expect(a.canStart(600, 900)).toBe(true);
    expect(a.fits(600)).toBe(false);
    expect(a.fits(600, 900)).toBe(true);
  });
});
