/**
 * `ringkv bench` flags: parsed and checked into a BenchConfig (every bad flag is a BenchUsageError
 * naming it, exit status 2) before anything runs. The runner is bench.ts.
 */
import type { DistributionName } from '../bench/distributions.js';
import type { TargetSpec } from '../bench/report.js';
import { httpBaseUrl } from '../bench/ringkv-target.js';
import { WORKLOADS, type WorkloadName } from '../bench/workloads.js';
import { CRDT_BENCH_WORKLOADS, type CrdtBenchWorkload } from '../bench/crdt-bench.js';
import type { ConsistencyLevel } from '../client/index.js';
import { validateTableName } from '../router/tables.js';
import { BenchUsageError, intFlag, posFlag, str, flagName } from './bench-common.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export const LEVELS: readonly ConsistencyLevel[] = ['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'];
const WORKLOAD_FLAGS = ['ingest', 'a', 'b', 'c', 'd', 'e', 'f', ...CRDT_BENCH_WORKLOADS] as const;
const DISTRIBUTIONS: readonly DistributionName[] = ['uniform', 'zipfian', 'latest'];
export const DEFAULT_DURATION_SEC = 10;
export const DEFAULT_CONCURRENCY = 16;
export const DEFAULT_RECORDS = 10_000;
export const MAX_THREADS = 16;


export type BenchConnection =
  | { kind: 'socket'; socket: string }
  | { kind: 'hosts'; hosts: string[]; secret?: string }
  | { kind: 'http'; url: string };

export interface BenchConfig {
  /** What is measured: a ringkv deployment, or one baseline alone. */
  target: 'ringkv' | 'rocksdb' | 'redis' | 'noop';
  workload: WorkloadName;
  /** Records loaded before the run (keys 0..records-1); the run's inserts continue after them. */
  records: number;
  operations?: number;
  durationSec?: number;
  valueSize: number;
  distribution?: DistributionName;
  /** Undefined with target 'rocksdb'. */
  connection?: BenchConnection;
  table: string;
  /** Define the table with this conflict mode before loading (needs the node's HTTP API). */
  conflicts?: 'lww' | 'vclock';
  /** Exactly one of rate (open loop) / concurrency (closed loop). */
  rate?: number;
  concurrency?: number;
  batch: number;
  loadBatch: number;
  loadConcurrency: number;
  consistency?: ConsistencyLevel;
  w?: number;
  r?: number;
  timeoutMs: number;
  connections: number;
  json?: string;
  baseline?: 'rocksdb' | 'redis';
  /** Parent directory of the baseline's temporary RocksDB (default: the OS temp dir). */
  baselineDir?: string;
  /** The Redis server of `--baseline redis` / `--target redis` (default redis://127.0.0.1:6379). */
  redisUrl?: string;
  targets?: TargetSpec;
  skipLoad: boolean;
  seed: number;
  maxInFlight?: number;
  stallTimeoutSec: number;
  /** Seconds of the run phase to run first and discard (JIT, connections, caches of a fresh process). */
  warmupSec: number;
  /** Generator threads (a piscina pool; 1 = the generator runs on the CLI's own thread). */
  threads: number;
  progress: boolean;
  /**
   * `--workload counter | set`: convergent data type updates beside as many LWW writes
   * (src/bench/crdt-bench.ts), instead of a YCSB workload (`workload` is then unused).
   */
  crdt?: CrdtBenchWorkload;
}

/** Keys of a crdt workload when --records is not given. */
export const DEFAULT_CRDT_KEYS = 1000;
export const DEFAULT_CRDT_OPERATIONS = 20_000;
/** Flags a crdt workload has no use for (no load phase, no reads, no baseline engine, closed loop). */
const CRDT_UNUSED_FLAGS = ['http', 'conflicts', 'rate', 'maxInFlight', 'batch', 'baseline', 'baselineDir', 'targetIops', 'p99Ms', 'maxErrorRate', 'skipLoad', 'warmup', 'duration', 'r', 'loadBatch', 'loadConcurrency', 'distribution'];

// --- flag parsing ----------------------------------------------------------------------

/**
 * Turn commander's option bag into a validated config. Throws BenchUsageError naming the flag.
 * `env` supplies RINGKV_SECRET for `--hosts` (as the data commands do).
 */
export function parseBenchOptions(raw: Record<string, unknown>, env: Record<string, string | undefined> = {}): BenchConfig {
  const target = (str(raw, 'target') ?? 'ringkv').toLowerCase();
  if (target !== 'ringkv' && target !== 'rocksdb' && target !== 'redis' && target !== 'noop') {
    throw new BenchUsageError(`--target must be ringkv, rocksdb, redis or noop, got ${JSON.stringify(target)}`);
  }

  const wl = (str(raw, 'workload') ?? 'a').toLowerCase();
  if (!(WORKLOAD_FLAGS as readonly string[]).includes(wl)) {
    throw new BenchUsageError(`--workload must be one of ${WORKLOAD_FLAGS.join(', ')} or ts, got ${JSON.stringify(str(raw, 'workload'))}`);
  }
  const crdt = (CRDT_BENCH_WORKLOADS as readonly string[]).includes(wl) ? (wl as CrdtBenchWorkload) : undefined;
  if (crdt !== undefined) {
    const unused = CRDT_UNUSED_FLAGS.filter((k) => raw[k] !== undefined && raw[k] !== false).map((k) => `--${flagName(k)}`);
    if (target !== 'ringkv') unused.push('--target rocksdb');
    if (unused.length > 0) throw new BenchUsageError(`${unused.join(', ')} ${unused.length > 1 ? 'do' : 'does'} not apply to --workload ${crdt} (closed loop over IPC or the peer port, zipfian updates, no load phase)`);
  }
  // A crdt workload replays an update-only zipfian stream of its own (crdt-bench.ts): `workload` is a placeholder.
  const workload: WorkloadName = crdt !== undefined ? 'A' : wl === 'ingest' ? 'ingest' : (wl.toUpperCase() as WorkloadName);
  const spec = WORKLOADS[workload];

  const recordsFlag = intFlag(raw, 'records', 0, 2 ** 52 - 1);
  const records = recordsFlag ?? (crdt !== undefined ? DEFAULT_CRDT_KEYS : workload === 'ingest' ? 0 : DEFAULT_RECORDS);
  if (workload !== 'ingest' && records < 1) throw new BenchUsageError(`workload ${workload} reads existing records: --records must be ≥ 1`);

  const operations = intFlag(raw, 'operations', 1, 2 ** 52) ?? (crdt !== undefined ? DEFAULT_CRDT_OPERATIONS : undefined);
  let durationSec = posFlag(raw, 'duration', { max: 7 * 86_400 });
  if (operations === undefined && durationSec === undefined) durationSec = DEFAULT_DURATION_SEC;

  const valueSize = intFlag(raw, 'valueSize', 0, 64 * 1024 * 1024) ?? 100;

  const distRaw = str(raw, 'distribution');
  let distribution: DistributionName | undefined;
  if (distRaw !== undefined) {
    const d = distRaw.toLowerCase();
    if (!(DISTRIBUTIONS as readonly string[]).includes(d)) throw new BenchUsageError(`--distribution must be one of ${DISTRIBUTIONS.join(', ')}, got ${JSON.stringify(distRaw)}`);
    distribution = d as DistributionName;
  }

  // Connection.
  const socket = str(raw, 'socket');
  const hostsRaw = str(raw, 'hosts');
  const httpRaw = str(raw, 'http');
  const secret = str(raw, 'secret');
  const given = [socket !== undefined && '--socket', hostsRaw !== undefined && '--hosts', httpRaw !== undefined && '--http'].filter(Boolean) as string[];
  let connection: BenchConnection | undefined;
  if (target !== 'ringkv') {
    const ringkvOnly = [
      ...given,
      ...(['secret', 'w', 'r', 'consistency', 'conflicts', 'baseline'] as const).filter((k) => raw[k] !== undefined).map((k) => `--${flagName(k)}`),
      ...(target === 'rocksdb' && raw['connections'] !== undefined ? ['--connections'] : []),
      ...(raw['skipLoad'] === true ? ['--skip-load'] : []),
    ];
    if (ringkvOnly.length > 0) {
      const what =
        target === 'rocksdb' ? '--target rocksdb benchmarks a fresh RocksDB in a temp dir' : target === 'redis' ? '--target redis benchmarks the server of --redis-url' : '--target noop measures the generator alone';
      throw new BenchUsageError(`${ringkvOnly.join(', ')} ${ringkvOnly.length > 1 ? 'apply' : 'applies'} to --target ringkv only (${what})`);
    }
  } else {
    if (given.length > 1) throw new BenchUsageError(`give only one of --socket, --hosts, --http (got ${given.join(' and ')})`);
    if (hostsRaw !== undefined) {
      const hosts = hostsRaw.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = hosts.find((h) => !/^[^\s:]+:\d{1,5}$/.test(h) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(h));
      if (hosts.length === 0 || bad !== undefined) throw new BenchUsageError(`--hosts must be HOST:PORT[,HOST:PORT...] peer addresses${bad ? `, got ${JSON.stringify(bad)}` : ''}`);
      const sec = secret ?? env['RINGKV_SECRET'];
      connection = sec !== undefined ? { kind: 'hosts', hosts, secret: sec } : { kind: 'hosts', hosts };
    } else {
      if (secret !== undefined) throw new BenchUsageError('--secret applies to --hosts only');
      if (httpRaw !== undefined) {
        try {
          connection = { kind: 'http', url: httpBaseUrl(httpRaw) };
        } catch (e) {
          throw new BenchUsageError(`--http: ${(e as Error).message}`);
        }
      } else {
        if (socket === '') throw new BenchUsageError('--socket must be a path');
        connection = { kind: 'socket', socket: socket ?? './data/ringkv.sock' };
      }
    }
  }

  let table = str(raw, 'table') ?? 'bench';
  try {
    table = validateTableName(table);
  } catch (e) {
    throw new BenchUsageError(`--table: ${(e as Error).message}`);
  }
  const conflictsRaw = str(raw, 'conflicts');
  let conflicts: 'lww' | 'vclock' | undefined;
  if (conflictsRaw !== undefined) {
    const c = conflictsRaw.toLowerCase();
    if (c !== 'lww' && c !== 'vclock') throw new BenchUsageError(`--conflicts must be lww or vclock, got ${JSON.stringify(conflictsRaw)}`);
    conflicts = c;
  }

  // Load shape.
  const rate = posFlag(raw, 'rate', { max: 1e9 });
  let concurrency = intFlag(raw, 'concurrency', 1, 100_000);
  if (rate !== undefined && concurrency !== undefined) {
    throw new BenchUsageError('give either --rate (open loop: offered ops/s) or --concurrency (closed loop: workers), not both');
  }
  if (rate === undefined && concurrency === undefined) concurrency = DEFAULT_CONCURRENCY;
  const batch = intFlag(raw, 'batch', 1, 100_000) ?? 1;
  const loadBatch = intFlag(raw, 'loadBatch', 1, 100_000) ?? 100;
  const loadConcurrency = intFlag(raw, 'loadConcurrency', 1, 100_000) ?? 16;
  const maxInFlight = intFlag(raw, 'maxInFlight', 1, 10_000_000);
  if (maxInFlight !== undefined && rate === undefined) throw new BenchUsageError('--max-in-flight applies to open-loop runs (--rate) only');
  if (maxInFlight !== undefined && maxInFlight < batch) throw new BenchUsageError(`--max-in-flight (${maxInFlight}) must be ≥ --batch (${batch})`);

  // Consistency.
  const w = intFlag(raw, 'w', 1, 5);
  const r = intFlag(raw, 'r', 1, 5);
  const levelRaw = str(raw, 'consistency');
  let consistency: ConsistencyLevel | undefined;
  if (levelRaw !== undefined) {
    const lv = levelRaw.toUpperCase();
    if (!(LEVELS as readonly string[]).includes(lv)) throw new BenchUsageError(`--consistency must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(levelRaw)}`);
    consistency = lv as ConsistencyLevel;
    if (w !== undefined || r !== undefined) throw new BenchUsageError('give either --consistency or --w/--r, not both');
  }

  const timeoutMs = intFlag(raw, 'timeout', 1, 600_000) ?? 5000;
  const connections = intFlag(raw, 'connections', 1, 64) ?? 1;

  const json = str(raw, 'json');
  if (json === '') throw new BenchUsageError('--json must be a file path');
  const baselineRaw = str(raw, 'baseline')?.toLowerCase();
  if (baselineRaw !== undefined && baselineRaw !== 'rocksdb' && baselineRaw !== 'redis') throw new BenchUsageError(`--baseline must be rocksdb or redis, got ${JSON.stringify(str(raw, 'baseline'))}`);
  const baselineDir = str(raw, 'baselineDir');
  if (baselineDir !== undefined && baselineRaw !== 'rocksdb' && target !== 'rocksdb') throw new BenchUsageError('--baseline-dir needs --baseline rocksdb (or --target rocksdb)');
  const redisUrl = str(raw, 'redisUrl');
  if (redisUrl !== undefined) {
    if (baselineRaw !== 'redis' && target !== 'redis') throw new BenchUsageError('--redis-url needs --baseline redis (or --target redis)');
    if (!/^rediss?:\/\/[^\s]+$/.test(redisUrl)) throw new BenchUsageError(`--redis-url must be a redis:// URL, got ${JSON.stringify(redisUrl)}`);
  }

  const targetIops = posFlag(raw, 'targetIops', { max: 1e12 });
  const p99Ms = posFlag(raw, 'p99Ms', { max: 1e9 });
  const maxErrorRate = posFlag(raw, 'maxErrorRate', { max: 1, allowZero: true });
  let targets: TargetSpec | undefined;
  if (targetIops !== undefined || p99Ms !== undefined) {
    targets = {};
    if (targetIops !== undefined) targets.targetIops = targetIops;
    if (p99Ms !== undefined) targets.p99Ms = p99Ms;
    if (maxErrorRate !== undefined) targets.maxErrorRate = maxErrorRate;
  } else if (maxErrorRate !== undefined) {
    throw new BenchUsageError('--max-error-rate needs --target-iops and/or --p99-ms');
  }

  const seed = intFlag(raw, 'seed', 0, 2 ** 32 - 1) ?? 1;
  const threads = intFlag(raw, 'threads', 1, MAX_THREADS) ?? 1;
  if (threads > 1 && target === 'rocksdb') throw new BenchUsageError('--threads does not apply to --target rocksdb (the engine runs in this process; its caller is the generator)');
  if (threads > 1 && (concurrency ?? threads) < threads) throw new BenchUsageError(`--concurrency (${concurrency}) must be ≥ --threads (${threads}): every thread runs at least one worker`);
  const stallTimeoutSec = posFlag(raw, 'stallTimeout', { max: 3600 }) ?? 30;
  const warmupSec = posFlag(raw, 'warmup', { max: 3600, allowZero: true }) ?? 0;

  const reads = spec.readProportion + spec.rmwProportion + spec.scanProportion > 0;
  if (consistency === 'ANY' && reads) throw new BenchUsageError(`--consistency ANY is for writes only, and workload ${wl} reads; use --w 1 for the writes instead`);
  if (r !== undefined && !reads) throw new BenchUsageError(`--r has no effect: workload ${wl} does not read`);

  const cfg: BenchConfig = {
    target,
    workload,
    records,
    valueSize,
    table,
    batch,
    loadBatch,
    loadConcurrency,
    timeoutMs,
    connections,
    skipLoad: raw['skipLoad'] === true,
    seed,
    stallTimeoutSec,
    warmupSec,
    threads,
    progress: raw['progress'] !== false,
  };
  if (operations !== undefined) cfg.operations = operations;
  if (durationSec !== undefined) cfg.durationSec = durationSec;
  if (distribution !== undefined) cfg.distribution = distribution;
  if (connection !== undefined) cfg.connection = connection;
  if (conflicts !== undefined) cfg.conflicts = conflicts;
  if (rate !== undefined) cfg.rate = rate;
  if (concurrency !== undefined) cfg.concurrency = concurrency;
  if (consistency !== undefined) cfg.consistency = consistency;
  if (w !== undefined) cfg.w = w;
  if (r !== undefined) cfg.r = r;
  if (json !== undefined) cfg.json = json;
  if (baselineRaw !== undefined) cfg.baseline = baselineRaw;
  if (baselineDir !== undefined) cfg.baselineDir = baselineDir;
  if (redisUrl !== undefined) cfg.redisUrl = redisUrl;
  if (targets !== undefined) cfg.targets = targets;
  if (maxInFlight !== undefined) cfg.maxInFlight = maxInFlight;
  if (crdt !== undefined) cfg.crdt = crdt;
  return cfg;
}
