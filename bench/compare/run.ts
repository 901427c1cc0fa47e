/**
 * bench/compare.sh: issue 12's table in one command. Starts its own Redis 7 (AOF everysec) and
 * fresh ringkv nodes on free loopback ports, runs every comparison through `ringkv bench` (each
 * row's ratio is side by side in one run of the harness), repeats each row, and prints medians
 * and spreads; writes the JSON result (bench/results/compare-<date>.json by default).
 *
 * Rows (ratio = ringkv / peer):
 *   writes-1op   single-op writes over IPC, 50 connections, 100-byte values   vs Redis SET (same harness)
 *   reads-1op    single-op reads over IPC, 50 connections                     vs Redis GET
 *   ingest       batched writes (100 per call, 16 in flight)                   vs raw RocksDB WriteBatch
 *   ycsb-a-open  YCSB A single node, open loop at half the closed-loop peak   p99 / p99.9 vs RocksDB
 *   cluster-a    3 nodes N=3 W=2 R=2, YCSB A closed loop                       vs raw RocksDB
 *   rss          node RSS after N batched writes (reported, no peer)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_PROCESS_FLAGS } from '../../src/cli/process-flags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'bin/ringkv.js');

interface Opts {
  quick: boolean;
  repeat: number;
  threads: number;
  out: string;
  rssWrites: number;
  rows: Set<string>;
  profileDir: string | undefined;
  keep: boolean;
}

const ALL_ROWS = ['writes-1op', 'reads-1op', 'ingest', 'ycsb-a-open', 'cluster-a', 'rss'];

function parseArgs(argv: string[]): Opts {
  const o: Opts = {
    quick: false,
    repeat: 3,
    threads: 2,
    out: path.join(ROOT, 'bench/results', `compare-${new Date().toISOString().slice(0, 10)}.json`),
    rssWrites: 5_000_000,
    rows: new Set(ALL_ROWS),
    profileDir: undefined,
    keep: false,
  };
  let repeatGiven = false;
  let rssGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--repeat') ((o.repeat = posInt(a, val())), (repeatGiven = true));
    else if (a === '--threads') o.threads = posInt(a, val());
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--rss-writes') ((o.rssWrites = posInt(a, val())), (rssGiven = true));
    else if (a === '--rows') {
      const rows = val().split(',');
      for (const r of rows) if (!ALL_ROWS.includes(r)) usage(`--rows: unknown row ${r} (rows: ${ALL_ROWS.join(',')})`);
      o.rows = new Set(rows);
    } else if (a === '--profile') o.profileDir = path.resolve(val());
    else if (a === '--keep') o.keep = true;
    else if (a === '-h' || a === '--help') usage('');
    else usage(`unknown argument ${a}`);
  }
  if (o.quick && !repeatGiven) o.repeat = 1;
  if (o.quick && !rssGiven) o.rssWrites = 300_000;
  return o;
}

function usage(msg: string): never {
  if (msg) process.stderr.write(`compare: ${msg}\n`);
  process.stderr.write(
    'usage: bench/compare.sh [--quick] [--repeat R] [--threads T] [--rows r1,r2] [--rss-writes N] [--out FILE] [--profile DIR] [--keep]\n' +
      `  rows: ${ALL_ROWS.join(', ')}\n  --quick: small sizes, 1 repeat (a smoke run); --profile: --cpu-prof every node into DIR\n`,
  );
  process.exit(msg ? 2 : 0);
}

function posInt(flag: string, v: string): number {
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n < 1) usage(`${flag} must be a positive integer`);
  return n;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function log(s: string): void {
  process.stderr.write(`[compare] ${s}\n`);
}

// --- processes ---------------------------------------------------------------------------

interface Redis {
  url: string;
  stop(): Promise<void>;
}

async function startRedis(dir: string): Promise<Redis> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  // The command bench/README.md documents: AOF on, fsync every second, no RDB snapshots.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', (e) => log(`redis-server: ${e.message} (install the Debian package redis-server)`));
  await waitFor('redis-server', () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG', 10_000);
  return { url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child, 'SIGTERM') };
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(signal);
  });
}

interface Node {
  socket: string;
  http: string;
  pid: number;
  rssKb(): number;
  stop(): Promise<void>;
}

async function startNode(dir: string, profileDir: string | undefined, label: string): Promise<Node> {
  const http = await freePort();
  const peer = await freePort();
  const data = path.join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, label)] : [];
  const args = [...NODE_PROCESS_FLAGS, ...nodeArgs, BIN, 'start', '--config', path.join(ROOT, 'config/default.json'), '--data', data, '--http', `127.0.0.1:${http}`, '--peer', `127.0.0.1:${peer}`, '--log-format', 'json', '--log-level', 'warn'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const socket = path.join(data, 'ringkv.sock');
  await waitFor(`node ${label}`, async () => {
    if (child.exitCode !== null) throw new Error(`node ${label} exited with ${child.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${http}/healthz`);
      return r.ok && existsSync(socket);
    } catch {
      return false;
    }
  }, 60_000);
  return {
    socket,
    http: `127.0.0.1:${http}`,
    pid: child.pid!,
    rssKb: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : 0;
    },
    stop: () => stopChild(child, 'SIGTERM'),
  };
}

// --- one bench run -------------------------------------------------------------------------

interface BenchJson {
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  errors: number;
  baseline?: { target: string; throughput: number; latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number }; errors: number };
  ratio?: { throughput: number | null; latencyMs: Record<string, number | null> };
  load?: BenchJson;
  env: { loadavg: number[] };
}

function bench(args: string[], tmp: string): BenchJson {
  const json = path.join(tmp, `bench-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  log(`ringkv bench ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [BIN, 'bench', ...args, '--json', json, '--no-progress'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0 || !existsSync(json)) throw new Error(`ringkv bench failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(readFileSync(json, 'utf8')) as BenchJson;
}

// --- rows -----------------------------------------------------------------------------------

interface Sample {
  ratio: number;
  ringkv: number;
  peer: number;
  extra?: Record<string, number>;
  loadavg: number;
}

interface RowResult {
  row: string;
  what: string;
  peer: string;
  unit: string;
  target: string;
  samples: Sample[];
  median?: number;
  min?: number;
  max?: number;
  met?: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function finish(r: RowResult, better: 'higher' | 'lower', bound: number): RowResult {
  const ratios = r.samples.map((s) => s.ratio);
  r.median = median(ratios);
  r.min = Math.min(...ratios);
  r.max = Math.max(...ratios);
  r.met = better === 'higher' ? r.median >= bound : r.median <= bound;
  return r;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const tmp = mkdtempSync(path.join(tmpdir(), 'ringkv-compare-'));
  const sizes = o.quick
    ? { writeOps: 40_000, readRecords: 50_000, readSec: 8, ingestOps: 300_000, aRecords: 100_000, aSec: 10, clusterRecords: 50_000, clusterSec: 10 }
    : { writeOps: 300_000, readRecords: 200_000, readSec: 20, ingestOps: 1_000_000, aRecords: 500_000, aSec: 30, clusterRecords: 300_000, clusterSec: 30 };
  const T = ['--threads', String(o.threads)];
  const results: RowResult[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const started = new Date().toISOString();
  const load0 = loadavg();
  log(`scratch dir ${tmp}; ${o.quick ? 'quick' : 'full'} sizes, ${o.repeat} repeat(s), ${o.threads} generator thread(s); load average ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  try {
    const needRedis = o.rows.has('writes-1op') || o.rows.has('reads-1op');
    const redis = needRedis ? await startRedis(path.join(tmp, 'redis')) : undefined;
    if (redis) cleanups.push(() => redis.stop());
    const R = redis ? ['--baseline', 'redis', '--redis-url', redis.url] : [];

    if (o.rows.has('writes-1op')) {
      const row: RowResult = { row: 'writes-1op', what: 'single-op writes over IPC, 50 connections, 100-byte values', peer: 'Redis SET (AOF everysec, ioredis)', unit: 'ops/s', target: '>= 1.0', samples: [] };
      for (let k = 0; k < o.repeat; k++) {
        const n = await startNode(path.join(tmp, `w${k}`), o.profileDir, `writes-1op-${k}`);
        try {
          const j = bench(['--socket', n.socket, '--workload', 'ingest', '--operations', String(sizes.writeOps), '--concurrency', '50', '--connections', '50', '--value-size', '100', ...T, ...R], tmp);
          row.samples.push({ ratio: j.ratio!.throughput!, ringkv: j.throughput, peer: j.baseline!.throughput, extra: { ringkvP99: j.latencyMs.p99, peerP99: j.baseline!.latencyMs.p99 }, loadavg: j.env.loadavg[0]! });
        } finally {
          await n.stop();
        }
      }
      results.push(finish(row, 'higher', 1.0));
    }

    if (o.rows.has('reads-1op')) {
      const row: RowResult = { row: 'reads-1op', what: 'single-op reads over IPC, 50 connections', peer: 'Redis GET (same harness)', unit: 'ops/s', target: '>= 1.0', samples: [] };
      for (let k = 0; k < o.repeat; k++) {
        const n = await startNode(path.join(tmp, `r${k}`), o.profileDir, `reads-1op-${k}`);
        try {
          const j = bench(['--socket', n.socket, '--workload', 'c', '--records', String(sizes.readRecords), '--duration', String(sizes.readSec), '--warmup', '2', '--concurrency', '50', '--connections', '50', ...T, ...R], tmp);
          row.samples.push({ ratio: j.ratio!.throughput!, ringkv: j.throughput, peer: j.baseline!.throughput, extra: { ringkvP99: j.latencyMs.p99, peerP99: j.baseline!.latencyMs.p99 }, loadavg: j.env.loadavg[0]! });
        } finally {
          await n.stop();
        }
      }
      results.push(finish(row, 'higher', 1.0));
    }

    if (o.rows.has('ingest')) {
      const row: RowResult = { row: 'ingest', what: 'batched writes (100 per call, 16 in flight), single node, IPC', peer: 'raw RocksDB WriteBatch of 100', unit: 'ops/s', target: '>= 0.6', samples: [] };
      for (let k = 0; k < o.repeat; k++) {
        const n = await startNode(path.join(tmp, `i${k}`), o.profileDir, `ingest-${k}`);
        try {
          const j = bench(['--socket', n.socket, '--workload', 'ingest', '--operations', String(sizes.ingestOps), '--batch', '100', '--concurrency', '16', '--value-size', '100', ...T, '--baseline', 'rocksdb', '--baseline-dir', tmp], tmp);
          row.samples.push({ ratio: j.ratio!.throughput!, ringkv: j.throughput, peer: j.baseline!.throughput, extra: { rssMb: Math.round(n.rssKb() / 1024) }, loadavg: j.env.loadavg[0]! });
        } finally {
          await n.stop();
        }
      }
      results.push(finish(row, 'higher', 0.6));
    }

    if (o.rows.has('ycsb-a-open')) {
      const row: RowResult = { row: 'ycsb-a-open', what: 'YCSB A single node, open loop at half the closed-loop peak: p99 (p99.9 in extra)', peer: 'in-process RocksDB at the same rate', unit: 'ms', target: '<= 1.5', samples: [] };
      for (let k = 0; k < o.repeat; k++) {
        const n = await startNode(path.join(tmp, `a${k}`), o.profileDir, `ycsb-a-${k}`);
        try {
          const closed = bench(['--socket', n.socket, '--table', 'ycsb', '--conflicts', 'lww', '--workload', 'a', '--records', String(sizes.aRecords), '--duration', String(sizes.aSec), '--concurrency', '64', ...T, '--baseline', 'rocksdb', '--baseline-dir', tmp], tmp);
          const rate = Math.max(100, Math.round(closed.throughput / 2));
          const open = bench(['--socket', n.socket, '--table', 'ycsb', '--workload', 'a', '--records', String(sizes.aRecords), '--skip-load', '--warmup', '5', '--duration', String(sizes.aSec), '--rate', String(rate), ...T, '--baseline', 'rocksdb', '--baseline-dir', tmp], tmp);
          const p99 = open.ratio!.latencyMs['p99']!;
          const p999 = open.ratio!.latencyMs['p999']!;
          row.samples.push({
            ratio: Math.max(p99, p999),
            ringkv: open.latencyMs.p99,
            peer: open.baseline!.latencyMs.p99,
            extra: { rate, closedPeak: closed.throughput, closedRatio: closed.ratio!.throughput!, p99Ratio: p99, p999Ratio: p999, ringkvP999: open.latencyMs.p999, peerP999: open.baseline!.latencyMs.p999 },
            loadavg: open.env.loadavg[0]!,
          });
        } finally {
          await n.stop();
        }
      }
      results.push(finish(row, 'lower', 1.5));
    }

    if (o.rows.has('cluster-a')) {
      const row: RowResult = { row: 'cluster-a', what: '3-node local cluster, N=3 W=2 R=2, YCSB A closed loop (C=64)', peer: 'raw RocksDB in process', unit: 'ops/s', target: '>= 0.5', samples: [] };
      for (let k = 0; k < o.repeat; k++) {
        const dir = path.join(tmp, `c${k}`);
        const hb = 20000 + Math.floor(Math.random() * 20000);
        const start = spawnSync(process.execPath, [BIN, 'local-cluster', 'start', '--nodes', '3', '--dir', dir, '--http-base', String(hb), '--peer-base', String(hb + 100)], { encoding: 'utf8' });
        if (start.status !== 0) throw new Error(`local-cluster start failed: ${start.stderr}`);
        try {
          const j = bench(['--socket', path.join(dir, 'node1/ringkv.sock'), '--table', 'ycsb', '--conflicts', 'lww', '--w', '2', '--r', '2', '--workload', 'a', '--records', String(sizes.clusterRecords), '--duration', String(sizes.clusterSec), '--concurrency', '64', ...T, '--baseline', 'rocksdb', '--baseline-dir', tmp], tmp);
          row.samples.push({ ratio: j.ratio!.throughput!, ringkv: j.throughput, peer: j.baseline!.throughput, extra: { loadThroughput: j.load?.throughput ?? 0 }, loadavg: j.env.loadavg[0]! });
        } finally {
          spawnSync(process.execPath, [BIN, 'local-cluster', 'stop', '--dir', dir], { encoding: 'utf8' });
        }
      }
      results.push(finish(row, 'higher', 0.5));
    }

    if (o.rows.has('rss')) {
      const n = await startNode(path.join(tmp, 'rss'), o.profileDir, 'rss');
      try {
        const j = bench(['--socket', n.socket, '--workload', 'ingest', '--operations', String(o.rssWrites), '--batch', '100', '--concurrency', '16', '--value-size', '100', ...T], tmp);
        const rssMb = Math.round(n.rssKb() / 1024);
        results.push({
          row: 'rss',
          what: `node RSS (MB, in the ratio column) after ${o.rssWrites.toLocaleString('en-US')} batched writes (ringkv column: their ops/s)`,
          peer: '-',
          unit: 'MB',
          target: 'bounded',
          samples: [{ ratio: rssMb, ringkv: j.throughput, peer: 0, loadavg: j.env.loadavg[0]! }],
          median: rssMb,
          min: rssMb,
          max: rssMb,
        });
      } finally {
        await n.stop();
      }
    }
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (!o.keep) rmSync(tmp, { recursive: true, force: true });
  }

  // --- report ---
  const fmt = (x: number | undefined, d = 2): string => (x === undefined ? '-' : x.toFixed(d));
  const lines = ['', 'row          ratio (median)  spread (min-max)   ringkv (median)   peer (median)   target   met   what', ''];
  for (const r of results) {
    const rk = median(r.samples.map((s) => s.ringkv));
    const pe = median(r.samples.map((s) => s.peer));
    const spread = r.samples.length > 1 ? `${fmt(r.min)}-${fmt(r.max)}` : '-';
    const met = r.met === undefined ? '' : r.met ? 'yes' : 'NO';
    lines.push(`${r.row.padEnd(12)} ${fmt(r.median).padStart(14)}  ${spread.padStart(16)}  ${rk.toFixed(r.unit === 'ms' ? 2 : 0).padStart(16)}  ${pe.toFixed(r.unit === 'ms' ? 2 : 0).padStart(14)}   ${r.target.padEnd(7)}  ${met.padEnd(4)}  ${r.what} (vs ${r.peer})`);
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
  const out = { startedAt: started, finishedAt: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavgAtStart: load0, loadavgAtEnd: loadavg(), options: { ...o, rows: [...o.rows] }, rows: results };
  mkdirSync(path.dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(out, null, 2)}\n`);
  log(`wrote ${o.out}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`compare: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
