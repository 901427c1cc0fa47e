/**
 * `ringkv bench`: the load generator. Loads records, runs a YCSB workload (or pure ingest)
 * against a node or cluster over IPC, the peer port or HTTP, optionally runs the same load and
 * run phases straight against RocksDB (`--baseline rocksdb`) and reports both side by side,
 * and turns `--target-iops` / `--p99-ms` into an exit status for pipelines.
 *
 * Exit status: 0 ran (and met the targets, when given); 1 missed a target, or could not run
 * (node unreachable, …); 2 invalid flags.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { Option, type Command, type CommanderError } from 'commander';
import type { DistributionName } from '../bench/distributions.js';
import { loadPhase, runWorkload, type LoadOptions, type ProgressSnapshot, type RunOptions, type RunResult } from '../bench/driver.js';
import { noopTarget } from '../bench/noop-target.js';
import { GeneratorPool, shareOf, shareStart, type ThreadTargetSpec } from '../bench/threads.js';
import { evaluateTargets, formatProgress, formatReport, toJsonReport, type JsonReport, type TargetSpec, type Verdict } from '../bench/report.js';
import { httpBaseUrl, openHttpTarget, openRingkvTarget } from '../bench/ringkv-target.js';
import { DEFAULT_REDIS_URL, openRedisTarget } from '../bench/redis-target.js';
import { openRocksBaseline } from '../bench/rocksdb-target.js';
import type { BenchTarget } from '../bench/target.js';
import { WORKLOADS, type WorkloadName } from '../bench/workloads.js';
import { CRDT_BENCH_WORKLOADS, formatCrdtBench, runCrdtBench, type CrdtBenchWorkload } from '../bench/crdt-bench.js';
import { parseTsBenchOptions, runTsBench } from './bench-ts.js';
import type { ConsistencyLevel } from '../client/index.js';
import { validateTableName } from '../router/tables.js';
import { RingkvError } from '../util/errors.js';
import { BenchUsageError, intFlag, posFlag, str, flagName, withTempTarget, type BenchIo } from './bench-common.js';

export { BenchUsageError, type BenchIo };

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const LEVELS: readonly ConsistencyLevel[] = ['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'];
const WORKLOAD_FLAGS = ['ingest', 'a', 'b', 'c', 'd', 'e', 'f', ...CRDT_BENCH_WORKLOADS] as const;
const DISTRIBUTIONS: readonly DistributionName[] = ['uniform', 'zipfian', 'latest'];
const DEFAULT_DURATION_SEC = 10;
const DEFAULT_CONCURRENCY = 16;
const DEFAULT_RECORDS = 10_000;
const MAX_THREADS = 16;


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
const DEFAULT_CRDT_KEYS = 1000;
const DEFAULT_CRDT_OPERATIONS = 20_000;
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

// --- running ---------------------------------------------------------------------------


interface PhaseResults {
  load?: RunResult;
  run: RunResult;
}

export interface BenchOutcome {
  exitCode: number;
  report: BenchJsonReport;
}

export interface BenchJsonReport extends JsonReport {
  /** The load phase (absent with --skip-load or 0 records), with the baseline's beside it. */
  load?: JsonReport;
  verdict?: Verdict & { targets: TargetSpec };
  config: Record<string, unknown>;
  env: { node: string; platform: string; cpus: number; loadavg: number[]; startedAt: string };
}

function describeConnection(c: BenchConnection | undefined): string {
  if (!c) return 'a fresh RocksDB in a temp dir';
  if (c.kind === 'socket') return `ipc ${path.resolve(c.socket)}`;
  if (c.kind === 'hosts') return `peer port ${c.hosts.join(',')}`;
  return `http ${c.url}`;
}

function progressPrinter(io: BenchIo, enabled: boolean, label: string): { onProgress?: (s: ProgressSnapshot) => void; end(): void } {
  if (!enabled) return { end() {} };
  let shown = false;
  return {
    onProgress: (s) => {
      const line = `${label} ${formatProgress(s)}`;
      if (io.tty) {
        io.err(`\r\x1b[K${line}`);
        shown = true;
      } else {
        io.err(`${line}\n`);
      }
    },
    end() {
      if (shown) io.err('\n');
      shown = false;
    },
  };
}

/** Runs the load and run phases: on this thread against an open target, or across a generator pool. */
interface PhaseRunner {
  readonly name: string;
  load(opts: LoadOptions): Promise<RunResult>;
  run(opts: RunOptions & { workload: WorkloadName }): Promise<RunResult>;
}

function inProcess(target: BenchTarget): PhaseRunner {
  return { name: target.name, load: (o) => loadPhase(target, o), run: (o) => runWorkload(target, o) };
}

/** The phases split over the pool's threads (src/bench/threads.ts): each its share of keys, workers, rate and connections. */
function threaded(pool: GeneratorPool, name: string, spec: (i: number) => ThreadTargetSpec, signal: AbortSignal | undefined): PhaseRunner {
  const k = pool.threads;
  const serializable = <T extends { onProgress?: unknown; signal?: unknown; clock?: unknown }>(o: T): Omit<T, 'onProgress' | 'signal' | 'clock'> => {
    const { onProgress: _p, signal: _s, clock: _c, ...rest } = o;
    return rest;
  };
  return {
    name,
    load: async (o) => {
      const n = Math.min(k, o.records);
      const r = await pool.run(
        n,
        (i) => ({
          target: spec(i),
          phase: {
            kind: 'load',
            opts: { ...serializable(o), records: shareOf(o.records, n, i), startIndex: (o.startIndex ?? 0) + shareStart(o.records, n, i), concurrency: Math.max(1, shareOf(o.concurrency ?? 4, n, i)) },
          },
        }),
        o.onProgress,
        signal,
      );
      return { ...r, target: name };
    },
    run: async (o) => {
      const n = o.operations !== undefined ? Math.min(k, o.operations) : k;
      const r = await pool.run(
        n,
        (i) => {
          const share: RunOptions & { workload: WorkloadName } = { ...o, seed: (o.seed ?? 1) + i * 7919, insertLane: { index: i, lanes: n } };
          if (o.operations !== undefined) share.operations = shareOf(o.operations, n, i);
          if (o.rate !== undefined) share.rate = o.rate / n;
          if (o.concurrency !== undefined) share.concurrency = Math.max(1, shareOf(o.concurrency, n, i));
          if (o.maxInFlight !== undefined) share.maxInFlight = Math.max(o.batch ?? 1, Math.ceil(o.maxInFlight / n));
          return { target: spec(i), phase: { kind: 'run', opts: serializable(share) } };
        },
        o.onProgress,
        signal,
      );
      return { ...r, target: name };
    },
  };
}

async function phases(target: PhaseRunner, cfg: BenchConfig, io: BenchIo, load: boolean): Promise<PhaseResults> {
  const common = { seed: cfg.seed, stallTimeoutSec: cfg.stallTimeoutSec, valueSize: cfg.valueSize, ...(io.signal ? { signal: io.signal } : {}) };
  const out: Partial<PhaseResults> = {};
  if (load && cfg.records > 0) {
    const p = progressPrinter(io, cfg.progress, `load ${target.name}`);
    try {
      out.load = await target.load({
        ...common,
        records: cfg.records,
        batch: cfg.loadBatch,
        concurrency: cfg.loadConcurrency,
        ...(p.onProgress ? { onProgress: p.onProgress } : {}),
      });
    } finally {
      p.end();
    }
    io.err(`load ${target.name}: ${out.load.operations.toLocaleString('en-US')} records in ${out.load.durationSec.toFixed(2)} s, ${Math.round(out.load.throughput).toLocaleString('en-US')} records/s, ${out.load.errors} errors\n`);
  }
  // The run phase's options; a warm-up runs the same for warmupSec (and only its inserts differ).
  const shape = {
    ...common,
    workload: cfg.workload,
    batch: cfg.batch,
    ...(cfg.rate !== undefined ? { rate: cfg.rate } : { concurrency: cfg.concurrency }),
    ...(cfg.distribution !== undefined ? { distribution: cfg.distribution } : {}),
    ...(cfg.maxInFlight !== undefined ? { maxInFlight: cfg.maxInFlight } : {}),
  };
  const phase = async (label: string, opts: Pick<RunOptions, 'records' | 'operations' | 'durationSec'>): Promise<RunResult> => {
    const p = progressPrinter(io, cfg.progress, `${label} ${target.name}`);
    try {
      return await target.run({ ...shape, ...opts, ...(p.onProgress ? { onProgress: p.onProgress } : {}) });
    } finally {
      p.end();
    }
  };
  let records = cfg.records;
  if (cfg.warmupSec > 0) {
    const warm = await phase('warm-up', { records, durationSec: cfg.warmupSec });
    // Inserts of the measured run continue after the warm-up's (attempted ones included; with
    // threads, past every thread's insert lane).
    const ins = warm.perKind.insert;
    records += ((ins?.count ?? 0) + (ins?.errors ?? 0)) * cfg.threads;
    io.err(`warm-up ${target.name} (discarded): ${warm.durationSec.toFixed(1)} s, ${Math.round(warm.throughput).toLocaleString('en-US')} ops/s, p99 ${warm.latencyMs.p99} ms, ${warm.errors} errors\n`);
  }
  out.run = await phase('run', {
    records,
    ...(cfg.operations !== undefined ? { operations: cfg.operations } : {}),
    ...(cfg.durationSec !== undefined ? { durationSec: cfg.durationSec } : {}),
  });
  io.err(`run ${target.name}: ${Math.round(out.run.throughput).toLocaleString('en-US')} ops/s, p99 ${out.run.latencyMs.p99} ms, ${out.run.errors} errors\n`);
  return out as PhaseResults;
}

/** Define the table's conflict mode through a node's HTTP API (the IPC protocol has no schema op). */
async function defineTable(httpBase: string, table: string, conflicts: 'lww' | 'vclock', timeoutMs: number): Promise<void> {
  const url = `${httpBase}/api/v1/tables/${table}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conflicts }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new RingkvError('unavailable', `cannot define table ${table} at ${url}: ${(e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try {
      msg = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
    } catch {
      /* keep text */
    }
    throw new RingkvError(res.status === 409 ? 'conflict' : 'internal', `cannot define table ${table} with conflicts=${conflicts}: ${msg}`);
  }
}

async function openMain(cfg: BenchConfig): Promise<BenchTarget> {
  const c = cfg.connection;
  if (!c) throw new Error('no connection');
  const cons = {
    ...(cfg.consistency !== undefined ? { consistency: cfg.consistency } : {}),
    ...(cfg.w !== undefined ? { w: cfg.w } : {}),
    ...(cfg.r !== undefined ? { r: cfg.r } : {}),
  };
  if (c.kind === 'http') {
    const t = await openHttpTarget({ url: c.url, table: cfg.table, timeoutMs: cfg.timeoutMs, ...cons });
    if (cfg.conflicts) await defineTable(c.url, cfg.table, cfg.conflicts, cfg.timeoutMs);
    return t;
  }
  const t = await openRingkvTarget({
    ...(c.kind === 'socket' ? { socket: c.socket } : { hosts: c.hosts, ...(c.secret !== undefined ? { secret: c.secret } : {}) }),
    table: cfg.table,
    timeoutMs: cfg.timeoutMs,
    connections: cfg.connections,
    ...cons,
  });
  if (cfg.conflicts) {
    try {
      const ring = await t.client.ring();
      const node = ring.nodes.find((n) => n.up && n.http) ?? ring.nodes.find((n) => n.http);
      if (!node) throw new RingkvError('unavailable', 'no node in the ring advertises an HTTP address');
      await defineTable(httpBaseUrl(node.http), cfg.table, cfg.conflicts, cfg.timeoutMs);
    } catch (e) {
      await t.close();
      throw e;
    }
  }
  return t;
}

function withRocks<T>(cfg: BenchConfig, fn: (t: BenchTarget) => Promise<T>): Promise<T> {
  return withTempTarget(cfg.baselineDir, 'ringkv-bench-rocksdb-', (dir) => openRocksBaseline(dir), fn);
}

/** The load and run phases against one target kind, on this thread or across the pool. */
async function runTarget(kind: BenchConfig['target'], cfg: BenchConfig, io: BenchIo, pool: GeneratorPool | undefined): Promise<PhaseResults> {
  if (kind === 'rocksdb') return withRocks(cfg, (t) => phases(inProcess(t), cfg, io, true));
  if (kind === 'noop') return phases(pool ? threaded(pool, 'noop', () => ({ kind: 'noop' }), io.signal) : inProcess(noopTarget()), cfg, io, true);
  if (kind === 'redis') {
    if (!pool) return withRedis(cfg, (t) => phases(inProcess(t), cfg, io, true));
    const url = cfg.redisUrl ?? DEFAULT_REDIS_URL;
    const spec = (i: number): ThreadTargetSpec => ({ kind: 'redis', url, connections: Math.max(1, shareOf(cfg.connections, cfg.threads, i)), timeoutMs: cfg.timeoutMs });
    return phases(threaded(pool, 'redis', spec, io.signal), cfg, io, true);
  }
  // ringkv: the CLI's own client defines the table and proves the node reachable first.
  const t = await openMain(pool ? { ...cfg, connections: 1 } : cfg);
  if (pool) {
    await t.close();
    return phases(threaded(pool, t.name, (i) => threadSpecOf(cfg, i), io.signal), cfg, io, !cfg.skipLoad);
  }
  try {
    return await phases(inProcess(t), cfg, io, !cfg.skipLoad);
  } finally {
    await t.close();
  }
}

/** Thread i's connection to the ringkv deployment (its share of --connections). */
function threadSpecOf(cfg: BenchConfig, i: number): ThreadTargetSpec {
  const c = cfg.connection!;
  const cons = { ...(cfg.consistency !== undefined ? { consistency: cfg.consistency } : {}), ...(cfg.w !== undefined ? { w: cfg.w } : {}), ...(cfg.r !== undefined ? { r: cfg.r } : {}) };
  if (c.kind === 'http') return { kind: 'http', url: c.url, table: cfg.table, timeoutMs: cfg.timeoutMs, ...cons };
  const where = c.kind === 'socket' ? { socket: c.socket } : { hosts: c.hosts, ...(c.secret !== undefined ? { secret: c.secret } : {}) };
  return { kind: 'ringkv', ...where, table: cfg.table, timeoutMs: cfg.timeoutMs, connections: Math.max(1, shareOf(cfg.connections, cfg.threads, i)), ...cons };
}

/** The Redis baseline: `connections` connections, a worker's lane picks one (redis-target.ts). */
async function withRedis<T>(cfg: BenchConfig, fn: (t: BenchTarget) => Promise<T>): Promise<T> {
  const t = await openRedisTarget({ url: cfg.redisUrl ?? DEFAULT_REDIS_URL, connections: cfg.connections, timeoutMs: cfg.timeoutMs });
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

function configForReport(cfg: BenchConfig): Record<string, unknown> {
  const c: Record<string, unknown> = { ...cfg };
  if (cfg.connection?.kind === 'hosts' && cfg.connection.secret !== undefined) c['connection'] = { kind: 'hosts', hosts: cfg.connection.hosts, secret: '(set)' };
  return c;
}

function header(cfg: BenchConfig): string {
  if (cfg.crdt !== undefined) {
    const cons = cfg.consistency ? `, consistency ${cfg.consistency}` : cfg.w !== undefined ? `, W=${cfg.w}` : '';
    return (
      `ringkv bench: workload ${cfg.crdt} (zipfian updates on ${cfg.records.toLocaleString('en-US')} keys${cfg.crdt === 'set' ? ', 60 % add / 40 % remove' : ''}) ` +
      `beside as many LWW writes of ${cfg.valueSize}-byte values, ${(cfg.operations ?? DEFAULT_CRDT_OPERATIONS).toLocaleString('en-US')} ops each, ` +
      `concurrency ${cfg.concurrency ?? DEFAULT_CONCURRENCY}, seed ${cfg.seed}\ntarget: ringkv via ${describeConnection(cfg.connection)}, tables ${cfg.table}_${cfg.crdt} and ${cfg.table}_lww${cons}`
    );
  }
  const spec = WORKLOADS[cfg.workload];
  const loadNote = cfg.records === 0 ? 'no records preloaded' : `${cfg.records.toLocaleString('en-US')} records${cfg.skipLoad && cfg.target === 'ringkv' ? ' (already loaded: --skip-load)' : ''}`;
  const stop = [cfg.operations !== undefined ? `${cfg.operations.toLocaleString('en-US')} ops` : '', cfg.durationSec !== undefined ? `${cfg.durationSec} s` : ''].filter(Boolean).join(' or ');
  const cons = cfg.consistency ? `, consistency ${cfg.consistency}` : `${cfg.w !== undefined ? `, W=${cfg.w}` : ''}${cfg.r !== undefined ? `, R=${cfg.r}` : ''}`;
  return (
    `ringkv bench: workload ${spec.name} (${spec.description}${cfg.distribution ? `; distribution ${cfg.distribution}` : ''}), ${loadNote}, ` +
    `${cfg.valueSize}-byte values, stop after ${stop}, seed ${cfg.seed}\n` +
    `target: ${cfg.target !== 'ringkv' ? cfg.target : `ringkv via ${describeConnection(cfg.connection)}, table ${cfg.table}${cfg.conflicts ? ` (${cfg.conflicts})` : ''}${cons}`}` +
    `${cfg.baseline === 'rocksdb' ? '; baseline: rocksdb in a temp dir, same process, same op stream' : cfg.baseline === 'redis' ? `; baseline: redis at ${cfg.redisUrl ?? DEFAULT_REDIS_URL} through ioredis, same process, same op stream` : ''}`
  );
}

/** `--workload counter | set`: the CRDT updates beside as many LWW writes, one report. */
async function runCrdtWorkload(cfg: BenchConfig, io: BenchIo, workload: CrdtBenchWorkload): Promise<BenchOutcome> {
  const startedAt = new Date().toISOString();
  const c = cfg.connection;
  if (!c || c.kind === 'http') throw new RingkvError('bad_request', `--workload ${workload} runs over IPC or the peer port`);
  const r = await runCrdtBench({
    workload,
    target: c.kind === 'socket' ? { socket: c.socket } : { hosts: c.hosts, ...(c.secret !== undefined ? { secret: c.secret } : {}) },
    keys: Math.max(1, cfg.records),
    operations: cfg.operations ?? DEFAULT_CRDT_OPERATIONS,
    concurrency: cfg.concurrency ?? DEFAULT_CONCURRENCY,
    segments: 5,
    valueSize: cfg.valueSize,
    seed: cfg.seed,
    timeoutMs: cfg.timeoutMs,
    table: cfg.table,
    ...(cfg.consistency !== undefined ? { consistency: cfg.consistency } : {}),
    ...(cfg.w !== undefined ? { w: cfg.w } : {}),
    ...(io.signal ? { signal: io.signal } : {}),
    ...(cfg.progress ? { log: (line: string) => io.err(`${line}\n`) } : {}),
  });
  io.out(`${formatCrdtBench(r)}\n`);
  const report: BenchJsonReport = {
    ...r.comparison,
    config: configForReport(cfg),
    env: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length, loadavg: loadavg().map((x) => Math.round(x * 100) / 100), startedAt },
  };
  (report as unknown as Record<string, unknown>)['crdt'] = { sizes: r.sizes, growthPer1000: r.growthPer1000 };
  if (cfg.json) {
    mkdirSync(path.dirname(path.resolve(cfg.json)), { recursive: true });
    writeFileSync(cfg.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  return { exitCode: EXIT_OK, report };
}

/** Run the benchmark as configured; returns the exit status and the JSON report (also written to cfg.json). */
export async function runBench(cfg: BenchConfig, io: BenchIo): Promise<BenchOutcome> {
  if (cfg.crdt !== undefined) return runCrdtWorkload(cfg, io, cfg.crdt);
  const startedAt = new Date().toISOString();
  const pool = cfg.threads > 1 ? new GeneratorPool(cfg.threads) : undefined;
  let main: PhaseResults;
  let base: PhaseResults | undefined;
  try {
    main = await runTarget(cfg.target, cfg, io, pool);
    if (cfg.baseline && !io.signal?.aborted) {
      // The ringkv clients are closed by now, so the baseline has the process to itself.
      base = await runTarget(cfg.baseline, cfg, io, pool);
    }
  } finally {
    await pool?.close();
  }

  const lines: string[] = [header(cfg), ''];
  if (main.load) {
    lines.push(`LOAD PHASE (batch ${cfg.loadBatch}, concurrency ${cfg.loadConcurrency})`, formatReport(main.load, base?.load), '');
  } else if (cfg.target === 'ringkv' && cfg.records > 0 && base?.load) {
    lines.push('LOAD PHASE: skipped for ringkv (--skip-load); the baseline loaded its own copy', '');
  }
  lines.push('RUN PHASE', formatReport(main.run, base?.run), '');

  const report: BenchJsonReport = {
    ...toJsonReport(main.run, base?.run),
    config: configForReport(cfg),
    env: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length, loadavg: loadavg().map((x) => Math.round(x * 100) / 100), startedAt },
  };
  if (main.load) report.load = toJsonReport(main.load, base?.load);

  let exitCode = EXIT_OK;
  if (cfg.targets) {
    const verdict = evaluateTargets(main.run, cfg.targets);
    report.verdict = { ...verdict, targets: cfg.targets };
    const want = [
      cfg.targets.targetIops !== undefined ? `≥ ${cfg.targets.targetIops.toLocaleString('en-US')} ops/s` : '',
      cfg.targets.p99Ms !== undefined ? `p99 ≤ ${cfg.targets.p99Ms} ms` : '',
    ]
      .filter(Boolean)
      .join(', ');
    if (verdict.pass) lines.push(`PASS: ${want}`);
    else {
      lines.push(`FAIL: ${want}`);
      for (const r of verdict.reasons) lines.push(`  - ${r}`);
      exitCode = EXIT_FAILED;
    }
  }
  io.out(`${lines.join('\n').trimEnd()}\n`);
  if (cfg.json) {
    mkdirSync(path.dirname(path.resolve(cfg.json)), { recursive: true });
    writeFileSync(cfg.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  return { exitCode, report };
}

// --- the command -----------------------------------------------------------------------

/** `--workload ts` (src/cli/bench-ts.ts): its own phases and report. */
async function runTsCommand(raw: Record<string, unknown>): Promise<void> {

  let cfg;
  try {
    cfg = parseTsBenchOptions(raw, process.env);
  } catch (e) {
    if (!(e instanceof BenchUsageError)) throw e;
    process.stderr.write(`ringkv bench: ${e.message}\n`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.on('SIGINT', onSigint);
  try {
    process.exitCode = await runTsBench(cfg, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), tty: process.stderr.isTTY === true, signal: ac.signal });
  } catch (e) {
    process.stderr.write(`ringkv bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSigint);
  }
  setTimeout(() => process.exit(), 2000).unref();
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'load generator: load records, run a YCSB workload (or ingest) against ringkv over IPC, the peer port or HTTP, ' +
        'optionally beside RocksDB (--baseline rocksdb); report throughput and latency percentiles. ' +
        'Exit status 0 ok / targets met, 1 a target missed or the run failed, 2 bad flags.',
    )
    .addOption(new Option('--workload <w>', 'ingest | a | b | c | d | e | f (YCSB core workloads; default a; e scans in token order on ringkv, key order on rocksdb) | counter | set (convergent data types beside as many LWW writes) | ts (time series on a wide-column table: see --users, --range-reads)'))
    .option('--users <n>', 'ts: partitions (users) the rows are spread over (default 100)')
    .option('--range-reads <n>', 'ts: 100-row clustering range reads timed one at a time after the run (default 2000)')
    .option('--records <n>', `records loaded before the run (default ${DEFAULT_RECORDS.toLocaleString('en-US')}; 0 for ingest)`)
    .option('--operations <n>', 'stop after this many ops')
    .option('--duration <s>', `stop after this many seconds (default ${DEFAULT_DURATION_SEC} when --operations is not given)`)
    .option('--value-size <bytes>', 'bytes per value (default 100)')
    .option('--distribution <d>', "uniform | zipfian | latest (default: the workload's)")
    .option('--target <t>', 'ringkv (default), rocksdb / redis to benchmark that baseline alone, or noop (the generator\'s own ceiling)')
    .option('--socket <path>', 'IPC socket of the local node (default ./data/ringkv.sock)')
    .option('--hosts <list>', 'peer-port addresses HOST:PORT,... (token-aware client over TCP)')
    .option('--secret <secret>', 'cluster secret for --hosts (default $RINGKV_SECRET or the development default)')
    .option('--http <url>', "a node's HTTP API, e.g. http://127.0.0.1:7070 (one request per op)")
    .option('--table <t>', 'table to use (default bench)')
    .option('--conflicts <mode>', 'define the table first with conflicts lww | vclock (through the HTTP API); blind YCSB updates pile up siblings in vclock tables')
    .option('--rate <ops/s>', 'open loop: offered ops/s, latency measured from the scheduled time')
    .option('--concurrency <c>', `closed loop: workers each with one call in flight (default ${DEFAULT_CONCURRENCY})`)
    .option('--batch <b>', 'group up to B consecutive inserts/updates into one call (default 1)')
    .option('--load-batch <b>', 'records per call in the load phase (default 100)')
    .option('--load-concurrency <c>', 'calls in flight in the load phase (default 16)')
    .option('--max-in-flight <n>', 'open loop: ops in flight before new ones fail as client-overloaded (default 10,000)')
    .option('--w <n>', 'write acks required (1..5)')
    .option('--r <n>', 'read replies required (1..5)')
    .option('--consistency <level>', `consistency level: ${LEVELS.join(', ')}`)
    .option('--timeout <ms>', 'per-request deadline in ms (default 5000)')
    .option('--connections <n>', 'connections per node (default 1); closed-loop worker i uses connection i mod n (also for --baseline redis)')
    .option('--json <file>', 'write the JSON report here')
    .option('--baseline <engine>', 'also run the same load and run phases on rocksdb (a temp dir, in process) or redis (--redis-url, through ioredis), after ringkv, and report both')
    .option('--redis-url <url>', 'the Redis server of --baseline redis / --target redis (default redis://127.0.0.1:6379)')
    .option('--baseline-dir <dir>', 'parent directory of the baseline temp dir (put it on the same disk as the node data)')
    .option('--target-iops <x>', 'required throughput, ops/s (exit 1 if missed)')
    .option('--p99-ms <y>', 'required p99 latency bound, ms (exit 1 if missed; needs an open-loop --rate run)')
    .option('--max-error-rate <f>', 'with targets: allowed fraction of failed ops (default 0)')
    .option('--skip-load', 'the records are already loaded: skip the load phase (ringkv only)')
    .option('--seed <n>', 'seed for the op stream and values (default 1)')
    .option('--threads <k>', `generator threads (a piscina pool, 1..${MAX_THREADS}; default 1): each its own connections and share of workers, rate and keys, one merged histogram`)
    .option('--warmup <s>', 'run the workload this many seconds first and discard the figures (default 0)')
    .option('--stall-timeout <s>', 'seconds: give up when nothing completes for this long (default 30)')
    .option('--no-progress', 'no progress lines on stderr')
    .exitOverride((err: CommanderError) => {
      // Commander already printed its message; bad flags are exit status 2 like ours.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    })
    .action(async (raw: Record<string, unknown>) => {
      if (typeof raw['workload'] === 'string' && raw['workload'].toLowerCase() === 'ts') return runTsCommand(raw);
      let cfg: BenchConfig;
      try {
        cfg = parseBenchOptions(raw, process.env);
      } catch (e) {
        if (e instanceof BenchUsageError) {
          process.stderr.write(`ringkv bench: ${e.message}\n`);
          process.exitCode = EXIT_USAGE;
          return;
        }
        throw e;
      }
      const ac = new AbortController();
      let interrupts = 0;
      const onSigint = (): void => {
        if (++interrupts > 1) process.exit(130);
        process.stderr.write('\nringkv bench: interrupted, draining in-flight ops (Ctrl-C again to quit now)\n');
        ac.abort();
      };
      process.on('SIGINT', onSigint);
      try {
        process.stderr.write(`${header(cfg)}\n`);
        const { exitCode } = await runBench(cfg, {
          out: (s) => process.stdout.write(s),
          err: (s) => process.stderr.write(s),
          tty: process.stderr.isTTY === true,
          signal: ac.signal,
        });
        process.exitCode = exitCode;
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        process.stderr.write(`ringkv bench: ${msg}\n`);
        process.exitCode = EXIT_FAILED;
      } finally {
        process.off('SIGINT', onSigint);
      }
      // Nothing should keep the loop alive now; if something does, don't hang a pipeline.
      setTimeout(() => process.exit(), 2000).unref();
    });
}
