/**
 * `ringkv bench`: the load generator. Loads records, runs a YCSB workload (or pure ingest)
 * against a node or cluster over IPC, the peer port or HTTP, optionally runs the same load and
 * run phases straight against RocksDB (`--baseline rocksdb`) and reports both side by side,
 * and turns `--target-iops` / `--p99-ms` into an exit status for pipelines.
 *
 * Exit status: 0 ran (and met the targets, when given); 1 missed a target, or could not run
 * (node unreachable, …); 2 invalid flags (parsed in bench-options.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { Option, type Command, type CommanderError } from 'commander';
import { loadPhase, runWorkload, type LoadOptions, type ProgressSnapshot, type RunOptions, type RunResult } from '../bench/driver.js';
import { noopTarget } from '../bench/noop-target.js';
import { GeneratorPool, shareOf, shareStart, type ThreadTargetSpec } from '../bench/threads.js';
import { evaluateTargets, formatProgress, formatReport, toJsonReport, type JsonReport, type TargetSpec, type Verdict } from '../bench/report.js';
import { httpBaseUrl, openHttpTarget, openRingkvTarget } from '../bench/ringkv-target.js';
import { DEFAULT_REDIS_URL, openRedisTarget } from '../bench/redis-target.js';
import { openRocksBaseline } from '../bench/rocksdb-target.js';
import type { BenchTarget } from '../bench/target.js';
import { WORKLOADS, type WorkloadName } from '../bench/workloads.js';
import { formatCrdtBench, runCrdtBench, type CrdtBenchWorkload } from '../bench/crdt-bench.js';
import { parseTsBenchOptions, runTsBench } from './bench-ts.js';
import { RingkvError } from '../util/errors.js';
import { BenchUsageError, withTempTarget, type BenchIo } from './bench-common.js';
import { DEFAULT_CONCURRENCY, DEFAULT_CRDT_OPERATIONS, DEFAULT_DURATION_SEC, DEFAULT_RECORDS, EXIT_FAILED, EXIT_OK, EXIT_USAGE, LEVELS, MAX_THREADS, parseBenchOptions, type BenchConfig, type BenchConnection } from './bench-options.js';

export { BenchUsageError, type BenchIo };
export { EXIT_FAILED, EXIT_OK, EXIT_USAGE, parseBenchOptions, type BenchConfig, type BenchConnection };

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
