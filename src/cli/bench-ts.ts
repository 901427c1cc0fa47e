/**
 * `ringkv bench --workload ts`: the time-series workload of issue 13. A wide-column table
 * (user, ts, event) with PRIMARY KEY ((user), ts) and newest rows first:
 *   load   `--records` rows over `--users` partitions;
 *   run    `--duration` seconds of `--concurrency` workers, half inserts of new rows, half reads of
 *          the latest 10-100 rows of a random partition;
 *   range  `--range-reads` reads (one at a time) of a 100-row clustering range of a random partition.
 * With `--baseline rocksdb` the same op stream then runs against RocksDB in this process (one key
 * per row, the same seeks). The report gives rows/s (inserted and read) for both and their ratio,
 * and the range read's p50/p99.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { LatencyHistogram, type LatencyPercentiles } from '../bench/histogram.js';
import { openRingkvTs, openRocksTs, type TsTarget } from '../bench/ts-targets.js';
import type { ConsistencyLevel } from '../client/index.js';
import { BenchUsageError, intFlag, posFlag, str, withTempTarget, type BenchIo } from './bench-common.js';
import { seededRng } from '../bench/distributions.js';

export interface TsBenchConfig {
  target: 'ringkv' | 'rocksdb';
  connection?: { socket: string } | { hosts: string[]; secret?: string };
  table: string;
  records: number;
  users: number;
  durationSec: number;
  concurrency: number;
  loadConcurrency: number;
  rangeReads: number;
  timeoutMs: number;
  consistency?: ConsistencyLevel;
  seed: number;
  baseline: boolean;
  baselineDir?: string;
  json?: string;
}

/** Rows of a partition before the run: a 100-row range needs at least that many. */
const RANGE_ROWS = 100;
/** Timestamps of a partition's rows: BASE_TS + index * STEP_MS. */
const BASE_TS = Date.UTC(2024, 0, 1);
const STEP_MS = 1000;

export function parseTsBenchOptions(raw: Record<string, unknown>, env: Record<string, string | undefined>): TsBenchConfig {
  const target = (str(raw, 'target') ?? 'ringkv').toLowerCase();
  if (target !== 'ringkv' && target !== 'rocksdb') throw new BenchUsageError(`--target must be ringkv or rocksdb, got ${JSON.stringify(target)}`);
  const records = intFlag(raw, 'records', 1, 100_000_000) ?? 100_000;
  const users = intFlag(raw, 'users', 1, 10_000_000) ?? 100;
  if (records / users < RANGE_ROWS) throw new BenchUsageError(`--records / --users must be at least ${RANGE_ROWS} (the range read reads ${RANGE_ROWS} rows of a partition)`);
  const cfg: TsBenchConfig = {
    target,
    table: str(raw, 'table') ?? 'tsbench',
    records,
    users,
    durationSec: posFlag(raw, 'duration', { max: 86_400 }) ?? 10,
    concurrency: intFlag(raw, 'concurrency', 1, 10_000) ?? 16,
    loadConcurrency: intFlag(raw, 'loadConcurrency', 1, 10_000) ?? 32,
    rangeReads: intFlag(raw, 'rangeReads', 1, 10_000_000) ?? 2000,
    timeoutMs: intFlag(raw, 'timeout', 1, 600_000) ?? 5000,
    seed: intFlag(raw, 'seed', 0, 2 ** 32 - 1) ?? 1,
    baseline: false,
  };
  if (!/^[A-Za-z0-9_]{1,48}$/.test(cfg.table)) throw new BenchUsageError(`--table must be 1-48 letters, digits or underscores for a CQL table, got ${JSON.stringify(cfg.table)}`);
  const level = str(raw, 'consistency');
  if (level !== undefined) {
    const lv = level.toUpperCase();
    if (!['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'].includes(lv)) throw new BenchUsageError(`--consistency must be ONE, TWO, QUORUM, ALL or ANY, got ${JSON.stringify(level)}`);
    cfg.consistency = lv as ConsistencyLevel;
  }
  const baseline = str(raw, 'baseline');
  if (baseline !== undefined && baseline.toLowerCase() !== 'rocksdb') throw new BenchUsageError(`--baseline must be rocksdb, got ${JSON.stringify(baseline)}`);
  cfg.baseline = baseline !== undefined;
  const baselineDir = str(raw, 'baselineDir');
  if (baselineDir !== undefined) cfg.baselineDir = baselineDir;
  const json = str(raw, 'json');
  if (json !== undefined) cfg.json = json;
  for (const k of ['http', 'batch', 'valueSize', 'distribution', 'rate', 'w', 'r', 'conflicts', 'operations'] as const) {
    if (raw[k] !== undefined) throw new BenchUsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} does not apply to --workload ts`);
  }
  if (target === 'ringkv') {
    const hosts = str(raw, 'hosts');
    if (hosts !== undefined) {
      const list = hosts.split(',').map((h) => h.trim()).filter(Boolean);
      const secret = str(raw, 'secret') ?? env['RINGKV_SECRET'];
      cfg.connection = secret !== undefined ? { hosts: list, secret } : { hosts: list };
    } else cfg.connection = { socket: str(raw, 'socket') ?? './data/ringkv.sock' };
  }
  return cfg;
}

export interface TsPhaseResult {
  load: { rows: number; seconds: number; rowsPerSec: number; errors: number };
  run: {
    seconds: number;
    inserts: number;
    reads: number;
    rowsRead: number;
    rowsPerSec: number;
    insertRowsPerSec: number;
    readRowsPerSec: number;
    errors: number;
    insertMs: LatencyPercentiles;
    latestMs: LatencyPercentiles;
  };
  range: { reads: number; rowsPerRead: number; ms: LatencyPercentiles; errors: number };
}

/** Load, run and range phases against one target (the same op stream for the same seed). */
export async function tsPhases(t: TsTarget, cfg: TsBenchConfig, io: BenchIo): Promise<TsPhaseResult> {
  const user = (i: number): string => `user${i}`;
  const perUser = Math.floor(cfg.records / cfg.users);
  let errors = 0;
  let firstError: string | undefined;
  const noteError = (e: unknown): void => {
    errors++;
    firstError ??= e instanceof Error ? e.message : String(e);
  };
  // Load: row i is row floor(i / users) of partition i % users.
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: cfg.loadConcurrency }, async () => {
      while (next < cfg.records && !io.signal?.aborted) {
        const i = next++;
        await t.insert(user(i % cfg.users), BASE_TS + Math.floor(i / cfg.users) * STEP_MS, `event-${i}`).catch(noteError);
      }
    }),
  );
  const loadSec = (performance.now() - t0) / 1000;
  const load = { rows: next, seconds: loadSec, rowsPerSec: next / loadSec, errors };
  io.err(`load ${t.name}: ${next.toLocaleString('en-US')} rows in ${loadSec.toFixed(2)} s, ${Math.round(load.rowsPerSec).toLocaleString('en-US')} rows/s, ${errors} errors${firstError ? ` (first: ${firstError})` : ''}\n`);

  // Run: half inserts of the next row of a random partition, half latest-N reads.
  const rand = seededRng(cfg.seed);
  const nextRow = new Array<number>(cfg.users).fill(perUser + 1);
  const insertH = new LatencyHistogram();
  const latestH = new LatencyHistogram();
  let inserts = 0;
  let reads = 0;
  let rowsRead = 0;
  errors = 0;
  const r0 = performance.now();
  const until = r0 + cfg.durationSec * 1000;
  await Promise.all(
    Array.from({ length: cfg.concurrency }, async () => {
      while (performance.now() < until && !io.signal?.aborted) {
        const u = Math.floor(rand() * cfg.users);
        const s = performance.now();
        if (rand() < 0.5) {
          const row = nextRow[u]!++;
          try {
            await t.insert(user(u), BASE_TS + row * STEP_MS, `event-run-${row}`);
            inserts++;
            insertH.recordMicros((performance.now() - s) * 1000);
          } catch (e) {
            noteError(e);
          }
        } else {
          const n = 10 + Math.floor(rand() * 91);
          try {
            rowsRead += await t.latest(user(u), n);
            reads++;
            latestH.recordMicros((performance.now() - s) * 1000);
          } catch (e) {
            noteError(e);
          }
        }
      }
    }),
  );
  const runSec = (performance.now() - r0) / 1000;
  const run = {
    seconds: runSec,
    inserts,
    reads,
    rowsRead,
    rowsPerSec: (inserts + rowsRead) / runSec,
    insertRowsPerSec: inserts / runSec,
    readRowsPerSec: rowsRead / runSec,
    errors,
    insertMs: insertH.percentiles(),
    latestMs: latestH.percentiles(),
  };
  io.err(`run ${t.name}: ${Math.round(run.rowsPerSec).toLocaleString('en-US')} rows/s (${inserts} inserts, ${reads} reads of ${rowsRead} rows), ${errors} errors\n`);

  // Range: one at a time, 100 consecutive rows of a loaded partition.
  const rangeH = new LatencyHistogram();
  let rangeRows = 0;
  errors = 0;
  for (let k = 0; k < cfg.rangeReads && !io.signal?.aborted; k++) {
    const u = Math.floor(rand() * cfg.users);
    const start = Math.floor(rand() * (perUser - RANGE_ROWS + 1));
    const s = performance.now();
    try {
      rangeRows += await t.range(user(u), BASE_TS + start * STEP_MS, BASE_TS + (start + RANGE_ROWS) * STEP_MS);
      rangeH.recordMicros((performance.now() - s) * 1000);
    } catch (e) {
      noteError(e);
    }
  }
  const range = { reads: rangeH.count, rowsPerRead: rangeH.count > 0 ? rangeRows / rangeH.count : 0, ms: rangeH.percentiles(), errors };
  return { load, run, range };
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
const ratio = (a: number, b: number | undefined): string => (b === undefined || b === 0 ? '' : `   ratio ${(a / b).toFixed(2)}`);

export function formatTsReport(main: TsPhaseResult, base: TsPhaseResult | undefined, names: [string, string]): string {
  const [m, b] = names;
  const side = (label: string, f: (r: TsPhaseResult) => string): string[] => [`  ${label.padEnd(9)} ${m.padEnd(8)} ${f(main)}`, ...(base ? [`  ${''.padEnd(9)} ${b.padEnd(8)} ${f(base)}`] : [])];
  return [
    'LOAD (inserts, one row per statement)',
    ...side('rows/s', (r) => `${fmt(r.load.rowsPerSec)}${r === main ? ratio(main.load.rowsPerSec, base?.load.rowsPerSec) : ''}`),
    '',
    'RUN (50% inserts, 50% reads of the latest 10-100 rows of a partition)',
    ...side('rows/s', (r) => `${fmt(r.run.rowsPerSec)} (inserted ${fmt(r.run.insertRowsPerSec)}, read ${fmt(r.run.readRowsPerSec)})${r === main ? ratio(main.run.rowsPerSec, base?.run.rowsPerSec) : ''}`),
    ...side('insert', (r) => `p50 ${r.run.insertMs.p50} ms, p99 ${r.run.insertMs.p99} ms`),
    ...side('latest-N', (r) => `p50 ${r.run.latestMs.p50} ms, p99 ${r.run.latestMs.p99} ms`),
    '',
    `RANGE (100-row clustering range reads, one at a time)`,
    ...side('latency', (r) => `p50 ${r.range.ms.p50} ms, p99 ${r.range.ms.p99} ms (${r.range.reads} reads, ${r.range.rowsPerRead.toFixed(0)} rows each)`),
    '',
    `machine: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other processes may share it)`,
  ].join('\n');
}

function withRocksTs<T>(cfg: TsBenchConfig, fn: (t: TsTarget) => Promise<T>): Promise<T> {
  return withTempTarget(cfg.baselineDir, 'ringkv-bench-ts-rocksdb-', (dir) => openRocksTs(dir), fn);
}

export async function runTsBench(cfg: TsBenchConfig, io: BenchIo): Promise<number> {
  io.err(
    `ringkv bench: workload ts, ${cfg.records.toLocaleString('en-US')} rows over ${cfg.users} partitions, run ${cfg.durationSec} s at concurrency ${cfg.concurrency}, ${cfg.rangeReads} range reads` +
      `${cfg.baseline ? '; baseline: rocksdb in a temp dir, same process, same op stream' : ''}\n`,
  );
  let main: TsPhaseResult;
  let name: string;
  if (cfg.target === 'rocksdb') {
    name = 'rocksdb';
    main = await withRocksTs(cfg, (t) => tsPhases(t, cfg, io));
  } else {
    const t = await openRingkvTs({ target: cfg.connection!, table: cfg.table, timeoutMs: cfg.timeoutMs, ...(cfg.consistency ? { consistency: cfg.consistency } : {}) });
    name = t.name;
    try {
      main = await tsPhases(t, cfg, io);
    } finally {
      await t.close();
    }
  }
  const base = cfg.baseline && cfg.target === 'ringkv' && !io.signal?.aborted ? await withRocksTs(cfg, (t) => tsPhases(t, cfg, io)) : undefined;
  io.out(`${formatTsReport(main, base, [name, 'rocksdb'])}\n`);
  if (cfg.json) {
    mkdirSync(path.dirname(path.resolve(cfg.json)), { recursive: true });
    writeFileSync(cfg.json, `${JSON.stringify({ workload: 'ts', config: { ...cfg, connection: cfg.connection && 'hosts' in cfg.connection ? { hosts: cfg.connection.hosts } : cfg.connection }, ringkv: main, rocksdb: base, loadavg: loadavg() }, null, 2)}\n`);
  }
  const failed = main.load.errors + main.run.errors + main.range.errors;
  return failed > 0 ? 1 : 0;
}
