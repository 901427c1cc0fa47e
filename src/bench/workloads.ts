/**
 * YCSB core workloads (A–F) plus a pure-insert `ingest` workload, and the op generator that
 * turns a workload spec into a reproducible stream of operations.
 */
import {
  latest,
  scramble52,
  seededRng,
  zipfian,
  type DistributionName,
  type KeyChooser,
  type Rng,
} from './distributions.js';

export type OpKind = 'read' | 'update' | 'insert' | 'scan' | 'rmw';

export const OP_KINDS: readonly OpKind[] = ['read', 'update', 'insert', 'scan', 'rmw'];

export interface Op {
  kind: OpKind;
  key: string;
  /** Record index behind `key`; the driver hands inserts back via `acknowledge`. */
  keyIndex: number;
  /** Only for scans: number of records to read, 1..maxScanLength. */
  scanLength?: number;
}

export type WorkloadName = 'A' | 'B' | 'C' | 'D' | 'E' | 'F' | 'ingest';

export interface WorkloadSpec {
  readonly name: string;
  readonly description: string;
  readonly readProportion: number;
  readonly updateProportion: number;
  readonly insertProportion: number;
  readonly scanProportion: number;
  readonly rmwProportion: number;
  readonly requestDistribution: DistributionName;
  /** Scan lengths are uniform in [1, maxScanLength], as YCSB's default scanlengthdistribution. */
  readonly maxScanLength: number;
}

const base = {
  readProportion: 0,
  updateProportion: 0,
  insertProportion: 0,
  scanProportion: 0,
  rmwProportion: 0,
  maxScanLength: 100,
} as const;

/** The YCSB core workloads, with YCSB's proportions and request distributions. */
export const WORKLOADS: Readonly<Record<WorkloadName, WorkloadSpec>> = {
  A: { ...base, name: 'A', description: 'update heavy: 50% read / 50% update, zipfian', readProportion: 0.5, updateProportion: 0.5, requestDistribution: 'zipfian' },
  B: { ...base, name: 'B', description: 'read mostly: 95% read / 5% update, zipfian', readProportion: 0.95, updateProportion: 0.05, requestDistribution: 'zipfian' },
  C: { ...base, name: 'C', description: 'read only: 100% read, zipfian', readProportion: 1, requestDistribution: 'zipfian' },
  D: { ...base, name: 'D', description: 'read latest: 95% read / 5% insert, latest', readProportion: 0.95, insertProportion: 0.05, requestDistribution: 'latest' },
  E: { ...base, name: 'E', description: 'short ranges: 95% scan (1..100) / 5% insert, zipfian', scanProportion: 0.95, insertProportion: 0.05, requestDistribution: 'zipfian' },
  F: { ...base, name: 'F', description: 'read-modify-write: 50% read / 50% rmw, zipfian', readProportion: 0.5, rmwProportion: 0.5, requestDistribution: 'zipfian' },
  ingest: { ...base, name: 'ingest', description: 'ingest: 100% insert of new keys', insertProportion: 1, requestDistribution: 'uniform' },
};

export function resolveWorkload(w: WorkloadName | WorkloadSpec): WorkloadSpec {
  if (typeof w !== 'string') return w;
  const spec = (WORKLOADS as Record<string, WorkloadSpec | undefined>)[w];
  if (!spec) throw new RangeError(`unknown workload '${w}' (expected one of ${Object.keys(WORKLOADS).join(', ')})`);
  return spec;
}

const KEY_DIGITS = 16; // 2^52 - 1 has 16 decimal digits

/**
 * YCSB-style key name: `user` + a scrambled, zero-padded number. Scrambling (as YCSB's hashed
 * inserts do) means insert order is not key order, so inserts and scans don't all hit the
 * tail of the keyspace; the scramble is a bijection (YCSB's FNV hash is not) so distinct
 * indices never collide; zero padding keeps lexicographic order = numeric order for scans.
 */
export function keyName(i: number): string {
  if (!Number.isSafeInteger(i) || i < 0 || i >= 2 ** 52) {
    throw new RangeError(`keyName: index must be an integer in [0, 2^52), got ${i}`);
  }
  return 'user' + scramble52(i).toString().padStart(KEY_DIGITS, '0');
}

/** `size` random (incompressible) bytes from `rng`, so compression can't flatter a target. */
export function makeValue(size: number, rng: Rng): Uint8Array {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`makeValue: bad size ${size}`);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 4) {
    let word = Math.floor(rng() * 4294967296);
    const end = Math.min(i + 4, size);
    for (let j = i; j < end; j++) {
      out[j] = word & 0xff;
      word >>>= 8;
    }
  }
  return out;
}

/** Anything the driver can pull operations from. */
export interface OpSource {
  next(): Op;
  /** Called once an insert has completed (successfully or not), as YCSB's acknowledged counter. */
  acknowledge(op: Op): void;
}

/**
 * Insert index issuing with an acknowledged watermark (YCSB's AcknowledgedCounterGenerator):
 * reads only target indices whose inserts have completed, so with many inserts in flight a
 * "read latest" doesn't mostly measure misses on keys that aren't written yet.
 */
class InsertSequence {
  private issued: number;
  private acked: number;
  // Completed out of order, above the watermark. Bounded by the number of inserts in flight.
  private readonly pending = new Set<number>();

  constructor(start: number) {
    this.issued = start;
    this.acked = start;
  }

  issue(): number {
    return this.issued++;
  }

  /** Number of leading indices known to be written: [0, watermark). */
  get watermark(): number {
    return this.acked;
  }

  acknowledge(i: number): void {
    if (i < this.acked) return;
    if (i !== this.acked) {
      this.pending.add(i);
      return;
    }
    this.acked++;
    while (this.pending.delete(this.acked)) this.acked++;
  }
}

export interface OpGeneratorOptions {
  /** Records present before the run (loaded by the load phase); inserts start at this index. */
  records: number;
  seed?: number;
  /** Overrides `seed`. */
  rng?: Rng;
  /** Overrides the workload's request distribution. */
  distribution?: DistributionName;
  /**
   * How many inserts the run may perform; sizes the zipfian keyspace when a workload both
   * inserts and reads zipfian (E), as YCSB does with its insert-count fudge. Default: records.
   */
  expectedInserts?: number;
  /**
   * Generators running side by side (`ringkv bench --threads K`): generator `index` of `lanes`
   * inserts record indices records + j*lanes + index (j = 0, 1, ...), so no two insert the same
   * key. Default: one lane.
   */
  insertLane?: { index: number; lanes: number };
}

// A zipfian pick beyond the written keys is redrawn (YCSB does the same); after this many
// misses we fold it into range so a pathological config can't spin.
const MAX_REDRAWS = 64;

export class OpGenerator implements OpSource {
  readonly spec: WorkloadSpec;
  private readonly rng: Rng;
  /** Counts this generator's own inserts (0, 1, ...); keyIndex maps them into its lane. */
  private readonly inserts: InsertSequence;
  private readonly records: number;
  private readonly lane: number;
  private readonly lanes: number;
  private readonly chooser: KeyChooser | null;
  private readonly chooserSpan: number;
  private readonly cumulative: ReadonlyArray<readonly [number, OpKind]>;

  constructor(workload: WorkloadName | WorkloadSpec, opts: OpGeneratorOptions) {
    const spec = resolveWorkload(workload);
    this.spec = spec;
    const { records } = opts;
    if (!Number.isSafeInteger(records) || records < 0) throw new RangeError(`records must be an integer ≥ 0, got ${records}`);
    const props: Array<[number, OpKind]> = [
      [spec.readProportion, 'read'],
      [spec.updateProportion, 'update'],
      [spec.insertProportion, 'insert'],
      [spec.scanProportion, 'scan'],
      [spec.rmwProportion, 'rmw'],
    ];
    const total = props.reduce((s, [p]) => s + p, 0);
    if (props.some(([p]) => !(p >= 0)) || Math.abs(total - 1) > 1e-9) {
      throw new RangeError(`workload ${spec.name}: proportions must be ≥ 0 and sum to 1 (sum ${total})`);
    }
    if (spec.scanProportion > 0 && !(Number.isSafeInteger(spec.maxScanLength) && spec.maxScanLength >= 1)) {
      throw new RangeError(`workload ${spec.name}: maxScanLength must be a positive integer`);
    }
    let acc = 0;
    this.cumulative = props.filter(([p]) => p > 0).map(([p, k]) => [(acc += p), k] as const);

    this.rng = opts.rng ?? seededRng(opts.seed ?? 1);
    this.inserts = new InsertSequence(0);
    this.records = records;
    this.lane = opts.insertLane?.index ?? 0;
    this.lanes = opts.insertLane?.lanes ?? 1;
    if (!(Number.isSafeInteger(this.lanes) && this.lanes >= 1 && Number.isSafeInteger(this.lane) && this.lane >= 0 && this.lane < this.lanes)) {
      throw new RangeError(`insertLane must be {index, lanes} with 0 <= index < lanes, got ${JSON.stringify(opts.insertLane)}`);
    }
    const needsExisting = spec.insertProportion < 1;
    if (needsExisting && records < 1) {
      throw new RangeError(`workload ${spec.name} reads existing keys: records must be ≥ 1 (run the load phase first)`);
    }

    const dist = opts.distribution ?? spec.requestDistribution;
    const expectedInserts = spec.insertProportion > 0 ? Math.max(0, Math.ceil(opts.expectedInserts ?? records)) : 0;
    this.chooserSpan = Math.max(1, records + expectedInserts);
    if (!needsExisting) {
      this.chooser = null;
    } else if (dist === 'latest') {
      this.chooser = latest(() => this.knownRecords, this.rng);
    } else if (dist === 'zipfian') {
      this.chooser = zipfian(this.chooserSpan, this.rng);
    } else {
      // Uniform re-reads the watermark each time, so it also covers keys inserted mid-run.
      this.chooser = { next: () => Math.floor(this.rng() * this.knownRecords) };
    }
  }

  /**
   * Records known to be written (loaded + acknowledged inserts). With several lanes, the other
   * lanes' inserts below it are assumed done too (a read of one that is not is an absent key, not
   * an error).
   */
  get knownRecords(): number {
    return this.records + this.inserts.watermark * this.lanes;
  }

  private existingIndex(): number {
    const chooser = this.chooser as KeyChooser;
    const known = this.knownRecords;
    let i = chooser.next();
    for (let tries = 0; i >= known && tries < MAX_REDRAWS; tries++) i = chooser.next();
    return i < known ? i : i % known;
  }

  private kind(): OpKind {
    const u = this.rng();
    for (const [c, k] of this.cumulative) if (u < c) return k;
    // Rounding can leave u ≥ the last cumulative value (e.g. 0.9999999 vs a sum of 0.99999…).
    return this.cumulative[this.cumulative.length - 1][1];
  }

  next(): Op {
    const kind = this.kind();
    if (kind === 'insert') {
      const keyIndex = this.records + this.inserts.issue() * this.lanes + this.lane;
      return { kind, key: keyName(keyIndex), keyIndex };
    }
    const keyIndex = this.existingIndex();
    if (kind === 'scan') {
      const scanLength = 1 + Math.floor(this.rng() * this.spec.maxScanLength);
      return { kind, key: keyName(keyIndex), keyIndex, scanLength };
    }
    return { kind, key: keyName(keyIndex), keyIndex };
  }

  acknowledge(op: Op): void {
    if (op.kind === 'insert') this.inserts.acknowledge((op.keyIndex - this.records - this.lane) / this.lanes);
  }

  /** `count` ops (bounded, for tests and offline inspection). */
  *take(count: number): Generator<Op, void, undefined> {
    for (let i = 0; i < count; i++) yield this.next();
  }
}

/** The load phase's source: inserts of indices start, start+1, … in order (as YCSB's load). */
export function loadSource(start = 0): OpSource {
  let i = start;
  return {
    next: () => {
      const keyIndex = i++;
      return { kind: 'insert', key: keyName(keyIndex), keyIndex };
    },
    acknowledge: () => {},
  };
}
