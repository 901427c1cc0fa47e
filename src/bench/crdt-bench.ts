/**
 * `ringkv bench --workload counter | set` (issue 14): convergent data type updates on a zipfian key
 * set, next to the same number of LWW writes on the same keys in the same run, with the ratio and
 * the state size growth per 1,000 operations.
 *
 *  - counter: `increment 1` per op;
 *  - set: an add/remove mix over a universe of SET_UNIVERSE elements per key: 60 % adds of an
 *    element not present, 40 % removes of one present (no context: the coordinating replica's).
 *
 * Both phases use one RingkvClient with `autoBatch` off, so each op is one request frame either
 * way and the comparison is of the data paths, not of client-side coalescing (which only put/get
 * have). The run is cut into `segments` that alternate CRDT and LWW (so load drift on a shared
 * machine hits both alike); after each CRDT segment every key's state is read and its size in
 * bytes summed: the growth per 1,000 operations is the change between segments.
 */
import { RingkvClient, type ConnectTarget, type ConsistencyLevel } from '../client/index.js';
import { RingkvError } from '../util/errors.js';
import { seededRng, type Rng } from './distributions.js';
import { runWorkload, type RunResult } from './driver.js';
import { LatencyHistogram } from './histogram.js';
import { formatReport, toJsonReport, type JsonReport } from './report.js';
import type { BenchTarget, OpResult, PutItem } from './target.js';
import { keyName, type WorkloadSpec } from './workloads.js';

export const CRDT_BENCH_WORKLOADS = ['counter', 'set'] as const;
export type CrdtBenchWorkload = (typeof CRDT_BENCH_WORKLOADS)[number];

/** Elements a set key draws from: bounds a key's state however long the run. */
export const SET_UNIVERSE = 100;
const SET_REMOVE_SHARE = 0.4;
/** Concurrent state reads when measuring sizes. */
const SIZE_READ_CONCURRENCY = 128;
/** How long the tables may take to reach every node by gossip. */
const SCHEMA_WAIT_MS = 20_000;

export interface CrdtBenchOptions {
  workload: CrdtBenchWorkload;
  target: ConnectTarget;
  /** Keys (zipfian over them). */
  keys: number;
  /** CRDT ops in all; the LWW phase writes as many. */
  operations: number;
  concurrency: number;
  /** Segments per phase (sizes are measured after each CRDT segment). */
  segments: number;
  /** LWW value bytes. */
  valueSize: number;
  seed: number;
  timeoutMs: number;
  /** Table name prefix: `<table>_counter` / `<table>_set` and `<table>_lww`. */
  table: string;
  consistency?: ConsistencyLevel;
  w?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface SizeSample {
  /** CRDT ops issued so far. */
  operations: number;
  /** Keys holding a state, and their encoded bytes: summed, and the largest. */
  keys: number;
  totalBytes: number;
  maxKeyBytes: number;
}

export interface CrdtBenchReport {
  workload: CrdtBenchWorkload;
  crdt: RunResult;
  lww: RunResult;
  /** crdt throughput / lww throughput, and latency ratios (toJsonReport's `ratio`). */
  comparison: JsonReport;
  sizes: SizeSample[];
  /** Bytes per 1,000 ops between consecutive samples: all keys together, and the largest key. */
  growthPer1000: Array<{ fromOps: number; toOps: number; totalBytes: number; maxKeyBytes: number }>;
}

/** Update-only on zipfian keys: the op stream both phases replay. */
const STREAM: WorkloadSpec = {
  name: 'crdt',
  description: 'updates on a zipfian key set',
  readProportion: 0,
  updateProportion: 1,
  insertProportion: 0,
  scanProportion: 0,
  rmwProportion: 0,
  requestDistribution: 'zipfian',
  maxScanLength: 1,
};

function kindOf(e: unknown): string {
  return e instanceof RingkvError ? e.code : 'exception';
}

/** The set's add/remove mix for one key: what the bench believes is present, and what is in flight. */
class SetKey {
  readonly present = new Set<number>();
  readonly pending = new Set<number>();
}

function crdtTarget(client: RingkvClient, o: CrdtBenchOptions, table: string, rng: Rng): BenchTarget {
  const opts = { ...(o.consistency !== undefined ? { consistency: o.consistency } : {}), ...(o.w !== undefined ? { w: o.w } : {}), timeoutMs: o.timeoutMs };
  const sets = new Map<string, SetKey>();
  const one = async (key: string): Promise<OpResult> => {
    try {
      if (o.workload === 'counter') {
        await client.counter(table, key).increment(1, opts);
        return null;
      }
      let st = sets.get(key);
      if (!st) sets.set(key, (st = new SetKey()));
      const removable = [...st.present].filter((e) => !st.pending.has(e));
      const free = SET_UNIVERSE - st.present.size - st.pending.size;
      const remove = removable.length > 0 && (free <= 0 || rng() < SET_REMOVE_SHARE);
      let el: number;
      if (remove) el = removable[Math.floor(rng() * removable.length)]!;
      else {
        do el = Math.floor(rng() * SET_UNIVERSE);
        while (st.present.has(el) || st.pending.has(el));
      }
      st.pending.add(el);
      try {
        if (remove) await client.set(table, key).remove([`e${el}`], opts);
        else await client.set(table, key).addAll([`e${el}`], opts);
        if (remove) st.present.delete(el);
        else st.present.add(el);
      } catch (e) {
        // A refused remove (not_present) means the element is gone; an unknown outcome leaves it uncertain: forget it.
        st.present.delete(el);
        throw e;
      } finally {
        st.pending.delete(el);
      }
      return null;
    } catch (e) {
      return kindOf(e);
    }
  };
  return {
    name: `crdt ${o.workload}`,
    put: (items: ReadonlyArray<PutItem>) => Promise.all(items.map((it) => one(it.key))),
    get: () => Promise.reject(new Error('the crdt bench stream has no reads')),
    close: async () => undefined,
  };
}

function lwwTarget(client: RingkvClient, o: CrdtBenchOptions, table: string): BenchTarget {
  const opts = { ...(o.consistency !== undefined ? { consistency: o.consistency } : {}), ...(o.w !== undefined ? { w: o.w } : {}), timeoutMs: o.timeoutMs };
  const one = (it: PutItem): Promise<OpResult> =>
    client.put(table, it.key, it.value, opts).then(
      () => null,
      (e: unknown) => kindOf(e),
    );
  return {
    name: 'lww writes',
    put: (items) => Promise.all(items.map(one)),
    get: () => Promise.reject(new Error('the crdt bench stream has no reads')),
    close: async () => undefined,
  };
}

/** Segment results as one run: ops and durations added, latency histograms merged exactly. */
export function mergeRuns(runs: readonly RunResult[]): RunResult {
  const first = runs[0];
  if (!first) throw new Error('mergeRuns: no runs');
  const h = new LatencyHistogram();
  const errorsByKind: Record<string, number> = {};
  let operations = 0;
  let errors = 0;
  let durationSec = 0;
  let peak = 0;
  for (const r of runs) {
    h.merge(LatencyHistogram.fromBase64(r.histogram));
    operations += r.operations;
    errors += r.errors;
    durationSec += r.durationSec;
    peak = Math.max(peak, r.peakInFlight);
    for (const [k, n] of Object.entries(r.errorsByKind)) errorsByKind[k] = (errorsByKind[k] ?? 0) + n;
  }
  const latencyMs = h.percentiles();
  return {
    ...first,
    throughput: durationSec > 0 ? (operations - errors) / durationSec : 0,
    operations,
    durationSec,
    latencyMs,
    perKind: { update: { count: operations - errors, errors, latencyMs } },
    errors,
    errorsByKind,
    peakInFlight: peak,
    stoppedBy: runs[runs.length - 1]!.stoppedBy,
    histogram: h.toBase64(),
  };
}

async function measureSizes(client: RingkvClient, table: string, keys: number, operations: number): Promise<SizeSample> {
  const sample: SizeSample = { operations, keys: 0, totalBytes: 0, maxKeyBytes: 0 };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(SIZE_READ_CONCURRENCY, keys) }, async () => {
      while (next < keys) {
        const r = await client.crdt(table, keyName(next++)).value({ r: 1 });
        if (!r.found) continue;
        sample.keys++;
        sample.totalBytes += r.bytes;
        sample.maxKeyBytes = Math.max(sample.maxKeyBytes, r.bytes);
      }
    }),
  );
  return sample;
}

/** Define the two tables and wait until every node serves them (schemas travel by gossip). */
async function defineTables(client: RingkvClient, o: CrdtBenchOptions, crdtTable: string, lww: string): Promise<void> {
  await client.createTable(crdtTable, { conflicts: 'crdt', type: o.workload });
  await client.createTable(lww, { conflicts: 'lww' });
  const probes = Array.from({ length: 32 }, (_, i) => `schema-probe-${i}`);
  const deadline = Date.now() + SCHEMA_WAIT_MS;
  for (;;) {
    const missing = await Promise.all(probes.map((k) => client.crdt(crdtTable, k).value({ r: 1 }).then(() => false, (e: unknown) => e instanceof RingkvError && e.code === 'not_found')));
    if (!missing.some(Boolean)) return;
    if (Date.now() > deadline) throw new RingkvError('unavailable', `table ${crdtTable} did not reach every node within ${SCHEMA_WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function runCrdtBench(o: CrdtBenchOptions): Promise<CrdtBenchReport> {
  const log = o.log ?? (() => undefined);
  const client = await RingkvClient.connect(o.target, { timeoutMs: o.timeoutMs + 1000, autoBatch: false });
  try {
    const crdtTable = `${o.table}_${o.workload}`;
    const lwwTable = `${o.table}_lww`;
    await defineTables(client, o, crdtTable, lwwTable);
    const rng = seededRng(o.seed ^ 0x5eed);
    const crdt = crdtTarget(client, o, crdtTable, rng);
    const lww = lwwTarget(client, o, lwwTable);
    const perSegment = Math.max(1, Math.floor(o.operations / o.segments));
    const crdtRuns: RunResult[] = [];
    const lwwRuns: RunResult[] = [];
    const sizes: SizeSample[] = [await measureSizes(client, crdtTable, o.keys, 0)];
    let issued = 0;
    for (let s = 0; s < o.segments && !o.signal?.aborted; s++) {
      const ops = s === o.segments - 1 ? o.operations - perSegment * (o.segments - 1) : perSegment;
      // The same op stream (seed) for both: the same keys in the same order.
      const shape = { workload: STREAM, records: o.keys, operations: ops, concurrency: o.concurrency, valueSize: o.valueSize, seed: o.seed + s, ...(o.signal ? { signal: o.signal } : {}) };
      lwwRuns.push(await runWorkload(lww, shape));
      crdtRuns.push(await runWorkload(crdt, shape));
      issued += ops;
      sizes.push(await measureSizes(client, crdtTable, o.keys, issued));
      const c = crdtRuns[crdtRuns.length - 1]!;
      const l = lwwRuns[lwwRuns.length - 1]!;
      log(`segment ${s + 1}/${o.segments}: ${o.workload} ${Math.round(c.throughput)} ops/s, lww ${Math.round(l.throughput)} ops/s, states ${sizes[sizes.length - 1]!.totalBytes} bytes`);
    }
    const crdtRun = mergeRuns(crdtRuns);
    const lwwRun = mergeRuns(lwwRuns);
    const growthPer1000 = sizes.slice(1).map((x, i) => {
      const prev = sizes[i]!;
      const k = (x.operations - prev.operations) / 1000;
      return { fromOps: prev.operations, toOps: x.operations, totalBytes: (x.totalBytes - prev.totalBytes) / k, maxKeyBytes: (x.maxKeyBytes - prev.maxKeyBytes) / k };
    });
    return { workload: o.workload, crdt: crdtRun, lww: lwwRun, comparison: toJsonReport(crdtRun, lwwRun), sizes, growthPer1000 };
  } finally {
    await client.close();
  }
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatCrdtBench(r: CrdtBenchReport): string {
  const lines = [formatReport(r.crdt, r.lww).replace(/\(baseline\)/g, '(same run)'), ''];
  lines.push('state size (every key read after each CRDT segment):');
  lines.push('  ops so far   keys   all states (bytes)   per key (bytes)   largest key (bytes)');
  for (const s of r.sizes) {
    const perKey = s.keys > 0 ? (s.totalBytes / s.keys).toFixed(1) : '-';
    lines.push(`  ${int(s.operations).padStart(10)} ${int(s.keys).padStart(6)} ${int(s.totalBytes).padStart(20)} ${perKey.padStart(17)} ${int(s.maxKeyBytes).padStart(21)}`);
  }
  lines.push('growth per 1,000 operations (all states grow as new keys get their first update; a key\'s own state is bounded):');
  for (const g of r.growthPer1000) lines.push(`  ops ${int(g.fromOps)}..${int(g.toOps)}: all states ${g.totalBytes >= 0 ? '+' : ''}${g.totalBytes.toFixed(1)} B, largest key ${g.maxKeyBytes >= 0 ? '+' : ''}${g.maxKeyBytes.toFixed(1)} B`);
  return lines.join('\n');
}
