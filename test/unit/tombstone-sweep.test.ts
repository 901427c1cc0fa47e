/**
 * The shard's tombstone sweep and dead-record index, without a worker or RocksDB: an in-memory
 * sorted "column family" behind the ports. Records here are one byte: 'L' live, 'D' dead within
 * grace, 'P' dead past grace (purgeable), 'X' unreadable.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeadRecordIndex, SweepRun, type SweepPorts } from '../../src/storage/tombstone-sweep.js';

class FakeFamily {
  readonly rows = new Map<string, Buffer>();
  reads = { chunks: 0, gets: 0 };
  constructor(entries: Array<[string, string]>) {
    for (const [k, v] of entries) this.rows.set(k, Buffer.from(v));
  }
  ports(): SweepPorts {
    return {
      readChunk: (after, limit) => {
        this.reads.chunks++;
        const keys = [...this.rows.keys()].sort().filter((k) => after === null || k > after.toString('latin1'));
        return keys.slice(0, limit).flatMap((k) => [Buffer.from(k, 'latin1'), this.rows.get(k)!]);
      },
      getMany: (keys) => {
        this.reads.gets += keys.length;
        return keys.map((k) => this.rows.get(k.toString('latin1')));
      },
      isCandidate: (r) => {
        if (r[0] === 0x58) throw new Error('unreadable');
        return r[0] === 0x44 || r[0] === 0x50;
      },
      isPurgeable: (_k, r) => r[0] === 0x50,
      purge: (rows) => {
        for (const [k] of rows) this.rows.delete(k.toString('latin1'));
      },
      nowMs: () => 0,
    };
  }
}

function runToEnd(run: SweepRun, ports: SweepPorts): number {
  let steps = 1;
  while (run.step(ports)) {
    steps++;
    expect(steps).toBeLessThan(10_000); // a run that never ends fails here instead of hanging the worker
  }
  return steps;
}

describe('tombstone sweep', () => {
  it('property: a full scan purges exactly the purgeable records, keeps the unreadable, and leaves an exact index; the next run visits only dead records', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('L', 'D', 'P', 'X'), { maxLength: 60 }), fc.integer({ min: 1, max: 7 }), (kinds, chunk) => {
        const fam = new FakeFamily(kinds.map((v, i) => [`k${String(i).padStart(3, '0')}`, v]));
        const index = new DeadRecordIndex(1_000);
        const first = new SweepRun([], index, chunk);
        runToEnd(first, fam.ports());
        const st = first.stats();
        expect(st).toMatchObject({ scanned: kinds.length, purged: kinds.filter((k) => k === 'P').length, indexed: false });
        expect([...fam.rows.values()].map((v) => v.toString()).sort()).toEqual(kinds.filter((k) => k !== 'P').sort());
        expect(index.complete).toBe(true);
        expect(index.size).toBe(kinds.filter((k) => k === 'D').length);

        const second = new SweepRun([7], index, chunk);
        fam.reads = { chunks: 0, gets: 0 };
        runToEnd(second, fam.ports());
        expect(second.stats()).toMatchObject({ indexed: true, scanned: index.size, purged: 0 });
        expect(fam.reads.chunks).toBe(0); // no full scan
        expect(second.waiters).toEqual([7]);
      }),
    );
  });

  it('a record that dies after the full scan is found through the index once noted, and purged past grace', () => {
    const fam = new FakeFamily([['a', 'L'], ['b', 'L']]);
    const index = new DeadRecordIndex(10);
    runToEnd(new SweepRun([], index, 2), fam.ports());
    expect(index.complete).toBe(true);
    fam.rows.set('b', Buffer.from('P')); // a commit wrote a tombstone past grace...
    index.note(Buffer.from('b'), true); // ...and noted it, as every commit does
    const run = new SweepRun([], index, 2);
    runToEnd(run, fam.ports());
    expect(run.stats()).toMatchObject({ indexed: true, scanned: 1, purged: 1 });
    expect([...fam.rows.keys()]).toEqual(['a']);
    expect(index.size).toBe(0);
  });

  it('an index key whose record is gone is forgotten, not counted', () => {
    const fam = new FakeFamily([['a', 'D']]);
    const index = new DeadRecordIndex(10);
    runToEnd(new SweepRun([], index, 5), fam.ports());
    fam.rows.delete('a'); // purged or cleaned up meanwhile
    const run = new SweepRun([], index, 5);
    runToEnd(run, fam.ports());
    expect(run.stats()).toMatchObject({ indexed: true, scanned: 0 });
    expect(index.size).toBe(0);
  });

  it('an overflow drops the index; a full scan that saw an overflow does not call it complete, the next one that fits does', () => {
    const index = new DeadRecordIndex(2);
    index.note(Buffer.from('x'), true);
    index.note(Buffer.from('y'), true);
    expect(index.size).toBe(2);
    index.note(Buffer.from('z'), true); // a third: over the bound
    expect(index.size).toBe(0);
    expect(index.overflows).toBe(1);

    const fam = new FakeFamily([['a', 'D'], ['b', 'D'], ['c', 'D']]);
    const over = new SweepRun([], index, 10);
    runToEnd(over, fam.ports());
    expect(index.complete).toBe(false); // three dead records do not fit in two
    fam.rows.delete('c');
    runToEnd(new SweepRun([], index, 10), fam.ports());
    expect(index.complete).toBe(true);
    expect(index.size).toBe(2);
  });

  it('a live write removes a key from the index', () => {
    const index = new DeadRecordIndex(10);
    index.note(Buffer.from('k'), true);
    index.note(Buffer.from('k'), false);
    expect(index.size).toBe(0);
  });
});
