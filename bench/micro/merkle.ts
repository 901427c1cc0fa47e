/**
 * Merkle trees and ring building: the wall-clock budgets that used to be asserted inside the unit
 * suite (issue 16: a unit test must not fail because the machine is busy; the figures live here).
 *
 * - `leafIndex`: a token's leaf in a range tree, on every write of a shard (budget: 1 µs).
 * - depth-20 tree updates: the deepest tree anti-entropy builds (2^20 leaves), one update per
 *   written key, plus the root (was asserted < 2 s for 100k updates + root).
 * - `buildRing` of a full-size ring (256 nodes x 16 vnodes, R=5, 3 racks: was asserted < 1 s).
 */
import { initHasher } from '../../src/ring/hash.js';
import { buildRing, type RingMember } from '../../src/ring/builder.js';
import { allocateTokens } from '../../src/ring/tokens.js';
import { seededRng } from '../../src/bench/distributions.js';
import { initMerkle, leafIndex, MerkleTree } from '../../src/merkle/index.js';
import { runSuite, sink, type Row, type SuiteOptions, type TaskSpec } from './harness.js';

/** Tokens per leafIndex call (one pass). */
const TOKENS = 1024;
/** Updates per call of the depth-20 task. */
const UPDATES = 10_000;

export async function merkleSuite(opts: SuiteOptions): Promise<Row[]> {
  await initMerkle();
  await initHasher();
  // A wrapping range (start > end), as the unit test timed it: the slow BigInt path.
  const start = { hi: 0x80000000, lo: 5 };
  const end = { hi: 0x10000000, lo: 7 };
  const toks = Array.from({ length: TOKENS }, (_, i) => ({ hi: (0x80000000 + i * 997) >>> 0, lo: i + 10 }));
  const keys = Array.from({ length: UPDATES }, (_, i) => Uint8Array.of(i & 255, (i >> 8) & 255, i >> 16));
  let round = 0;
  const t = new MerkleTree(20);
  const members: RingMember[] = Array.from({ length: 256 }, (_, i) => ({
    id: `node-${String(i).padStart(3, '0')}`,
    tokens: allocateTokens([], 16, seededRng(i + 1)),
    status: 'normal' as const,
    rack: `r${i % 3}`,
  }));

  const tasks: TaskSpec[] = [
    {
      name: 'merkle leafIndex (wrapping range)',
      opsPerCall: TOKENS,
      note: 'budget 1 µs per call; depth 16',
      fn: () => {
        let acc = 0;
        for (let i = 0; i < TOKENS; i++) acc += leafIndex(start, end, toks[i]!, 16);
        sink.n ^= acc;
      },
    },
    {
      name: 'merkle depth-20 update',
      opsPerCall: UPDATES,
      note: 'one update per written key, then the root',
      fn: () => {
        const r = round++;
        for (let i = 0; i < UPDATES; i++) t.update((i * 2654435761) >>> 12, keys[i]!, null, { hi: r, lo: i });
        sink.n ^= t.root().lo;
      },
    },
    {
      name: 'buildRing 256x16 R=5 racks',
      opsPerCall: 1,
      note: 'a full-size ring rebuilt on a membership change',
      fn: () => {
        sink.n ^= buildRing(members, { maxReplicas: 5 }).tokens.length;
      },
    },
  ];
  return runSuite('merkle', tasks, opts);
}
