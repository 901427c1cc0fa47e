/**
 * 2. Vector clocks and version merge; 3. record encode/decode.
 *
 * Every task runs a fixed inner loop (INNER ops per call) over prebuilt inputs, so the clock reads
 * around a call do not dominate sub-microsecond operations.
 */
import { vcCompare, vcMerge, type VClock, type VClockEntry } from '../../src/versions/vclock.js';
import { newVersion, type Version } from '../../src/versions/version.js';
import { mergeVersions } from '../../src/versions/reconcile.js';
import { decodeRecord, encodeRecord, initVersions } from '../../src/versions/record.js';
import { makeValue } from './fixtures.js';
import { runSuite, sink, type RatioSpec, type Row, type SuiteOptions } from './harness.js';

const INNER = 256;
/** Dot counters are microsecond timestamps; start from a fixed one so runs are comparable. */
const T0 = 1_732_000_000_000_000;
const MAX_SIBLINGS = 16;
const MAX_CLOCK = 16;

const nodeId = (i: number): string => `node-${String(i).padStart(3, '0')}`;

/** A clock with `n` entries over node-000.. node-(n-1), counters spread around T0 + offset. */
function clock(n: number, offset: number, bump?: number): VClock {
  const out: VClockEntry[] = [];
  for (let i = 0; i < n; i++) out.push([nodeId(i), T0 + offset + i * 1000 + (bump === i ? 5000 : 0)]);
  return out;
}

function version(node: string, counter: number, context: VClock, value: Uint8Array): Version {
  return newVersion({ node, counter, context, ts: counter, tombstone: false, value, maxClockEntries: MAX_CLOCK });
}

export async function versionsSuite(opts: SuiteOptions): Promise<Row[]> {
  await initVersions();
  const value = makeValue(100);

  // Clock pairs: `b` descends `a` (the common write-path case) and a concurrent pair (one entry
  // each way), which also makes vcMerge take its allocating path.
  const pairs = [3, 10].map((n) => ({
    n,
    a: clock(n, 0),
    descends: clock(n, 0, n - 1),
    concA: clock(n, 0, 0),
    concB: clock(n, 0, n - 1),
  }));

  // Versions. Write path: the stored version is replaced by one written with its context.
  const v1 = version(nodeId(0), T0 + 1, [], value);
  const v2 = version(nodeId(1), T0 + 2, v1.clock, value);
  // Three concurrent blind writes through different coordinators = 3 siblings; a 4th write made
  // with their merged context resolves them.
  const sibs = [0, 1, 2].map((i) => version(nodeId(i), T0 + 10 + i, [], value));
  const ctx3 = sibs.reduce<VClock>((c, s) => vcMerge(c, s.clock), []);
  const resolver = version(nodeId(0), T0 + 100, ctx3, value);
  const lwwOld = [version(nodeId(0), T0 + 1, [], value)];
  const lwwNew = [version(nodeId(1), T0 + 2, [], value)];
  const one = [v1];
  const inV2 = [v2];
  const inResolver = [resolver];
  const twoSibs = sibs.slice(0, 2);
  const inThird = [sibs[2]!];
  const rec1 = encodeRecord(one);
  const rec3 = encodeRecord(sibs);

  // Results are stored (not just counted) so the optimizer cannot elide the allocations the real
  // callers pay for (e.g. mergeVersions' result array).
  const keep: unknown[] = new Array<unknown>(INNER).fill(null);
  const loop = (f: () => { length: number } | number) => () => {
    for (let i = 0; i < INNER; i++) keep[i] = f();
    sink.n ^= typeof keep[0] === 'number' ? keep[0] : (keep[INNER - 1] as { length: number }).length;
  };

  const tasks = [];
  for (const p of pairs) {
    tasks.push(
      {
        name: `vcCompare ${p.n} entries (descends)`,
        opsPerCall: INNER,
        fn: loop(() => (vcCompare(p.a, p.descends) === 'before' ? 1 : 0)),
      },
      {
        name: `vcCompare ${p.n} entries (concurrent)`,
        opsPerCall: INNER,
        fn: loop(() => (vcCompare(p.concA, p.concB) === 'concurrent' ? 1 : 0)),
      },
      {
        name: `vcMerge ${p.n} entries (concurrent)`,
        opsPerCall: INNER,
        note: 'allocates the merged clock',
        fn: loop(() => vcMerge(p.concA, p.concB)),
      },
    );
  }
  tasks.push(
    {
      name: 'mergeVersions vclock 1+1 (supersede)',
      opsPerCall: INNER,
      note: 'stored [v1] + incoming v2 written with v1 context -> [v2]',
      fn: loop(() => mergeVersions('vclock', one, inV2, MAX_SIBLINGS)),
    },
    {
      name: 'mergeVersions vclock 3+1 (resolve siblings)',
      opsPerCall: INNER,
      note: '3 stored siblings + a write with their merged context -> 1',
      fn: loop(() => mergeVersions('vclock', sibs, inResolver, MAX_SIBLINGS)),
    },
    {
      name: 'mergeVersions vclock 2+1 (new sibling)',
      opsPerCall: INNER,
      note: '2 siblings + a concurrent blind write -> 3 siblings',
      fn: loop(() => mergeVersions('vclock', twoSibs, inThird, MAX_SIBLINGS)),
    },
    {
      name: 'mergeVersions lww 1+1',
      opsPerCall: INNER,
      fn: loop(() => mergeVersions('lww', lwwOld, lwwNew, MAX_SIBLINGS)),
    },
  );
  const versionRows = await runSuite('versions', tasks, opts);

  const recordRows = await runSuite(
    'record',
    [
      { name: 'encodeRecord 1 version', opsPerCall: INNER, note: `100-byte value, ${rec1.length} bytes encoded`, fn: loop(() => encodeRecord(one)) },
      { name: 'decodeRecord 1 version', opsPerCall: INNER, fn: loop(() => decodeRecord(rec1)) },
      { name: 'encodeRecord 3 siblings', opsPerCall: INNER, note: `3 x 100-byte values, ${rec3.length} bytes encoded`, fn: loop(() => encodeRecord(sibs)) },
      { name: 'decodeRecord 3 siblings', opsPerCall: INNER, fn: loop(() => decodeRecord(rec3)) },
    ],
    opts,
  );
  return [...versionRows, ...recordRows];
}

export const versionRatios: RatioSpec[] = [
  { label: 'vcCompare: 3 vs 10 entries (concurrent)', a: 'versions/vcCompare 3 entries (concurrent)', b: 'versions/vcCompare 10 entries (concurrent)' },
  { label: 'vcMerge: 3 vs 10 entries', a: 'versions/vcMerge 3 entries (concurrent)', b: 'versions/vcMerge 10 entries (concurrent)' },
  { label: 'mergeVersions: lww vs vclock (1+1)', a: 'versions/mergeVersions lww 1+1', b: 'versions/mergeVersions vclock 1+1 (supersede)' },
  { label: 'encodeRecord: 1 version vs 3 siblings', a: 'record/encodeRecord 1 version', b: 'record/encodeRecord 3 siblings' },
  { label: 'decodeRecord: 1 version vs 3 siblings', a: 'record/decodeRecord 1 version', b: 'record/decodeRecord 3 siblings' },
];
