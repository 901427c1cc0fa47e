/**
 * PlainRing: the ring lookup over plain JS objects, the baseline the SharedArrayBuffer ring table
 * is benchmarked against (bench/micro/ring.ts) and checked against (test/unit/ring-table.test.ts).
 */
import type { RingLayout } from './builder.js';
import type { Token } from './hash.js';
import { invariant } from '../util/errors.js';

/**
 * The same lookup over plain JS data (an array of Token objects), as the baseline for the benchmark
 * comparing it with the shared table. Single-threaded, no seqlock.
 */
export class PlainRing {
  private readonly tokens: Token[];
  private readonly pref: Uint16Array;
  private readonly replicas: number;

  constructor(layout: RingLayout) {
    invariant(layout.pref.length === layout.tokens.length * layout.replicas, 'layout pref is tokens x replicas');
    this.tokens = layout.tokens.map((t) => ({ hi: t.hi, lo: t.lo }));
    this.pref = layout.pref.slice();
    this.replicas = layout.replicas;
  }

  lookup(hi: number, lo: number, outNodes: Uint16Array): number {
    const tokens = this.tokens;
    const n = tokens.length;
    if (n === 0) return 0;
    let a = 0;
    let b = n;
    while (a < b) {
      const m = (a + b) >>> 1;
      const t = tokens[m]!;
      if (t.hi < hi || (t.hi === hi && t.lo < lo)) a = m + 1;
      else b = m;
    }
    const pos = a === n ? 0 : a;
    const r = this.replicas;
    if (outNodes.length < r) throw new RangeError(`PlainRing.lookup: output array needs room for ${r} replicas`);
    for (let k = 0; k < r; k++) outNodes[k] = this.pref[pos * r + k]!;
    return r;
  }
}
